// Parallel Runs: which prompts a Stop acts on, and how. Pure: a function of the store's
// prompts (PromptState objects), the workflow tab on screen and this client's id.
//
// The frontend's own Stop (actionbar button, Ctrl+Alt+Enter) stops the prompts of the workflow
// tab on screen; "Stop all" stops every prompt this client has in flight. Each prompt is
// stopped where it runs: a local prompt still waiting is taken off the queue ("delete"), a
// local prompt running is interrupted by its id ("interrupt"), a prompt on another executor is
// cancelled there ("cancel"). Waiting local prompts go first, so that interrupting a running
// one never lets a prompt this Stop also meant to end start in its place.

import { isTerminal } from "./records.js";

const ORDER = { delete: 0, cancel: 1, interrupt: 2 };

/** How one prompt in flight is stopped: "delete", "interrupt" or "cancel". */
export function stopAction(prompt) {
  if ((prompt.executor ?? "local") !== "local") return "cancel";
  return prompt.status === "running" ? "interrupt" : "delete";
}

/**
 * The stops to make, in order: `[{prompt, action}]`. `workflowId` limits them to one workflow
 * tab (undefined: every tab, for Stop all; null: no tab is on screen, so nothing); `clientId`
 * leaves out prompts another client queued (a prompt whose client is unknown counts as ours).
 */
export function planStop(prompts, { workflowId, clientId = null } = {}) {
  if (workflowId === null) return [];
  const plan = [];
  for (const prompt of prompts) {
    if (!prompt || isTerminal(prompt.status)) continue;
    if (workflowId !== undefined && prompt.workflow_id !== workflowId) continue;
    if (clientId && prompt.client_id && prompt.client_id !== clientId) continue;
    plan.push({ prompt, action: stopAction(prompt) });
  }
  return plan.sort((a, b) => ORDER[a.action] - ORDER[b.action]);
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * What to tell the user about a Stop: `{severity, summary, detail}`. `scope` is "tab" (the
 * frontend's Stop) or "all" (Stop all); `results` are the stops' answers (`{ok, message}`, in
 * the plan's order), left out before they are known.
 */
export function describeStop(plan, scope, results = null) {
  const where = scope === "all" ? "in flight from this browser tab" : "of this workflow tab";
  if (plan.length === 0) {
    return {
      severity: "info",
      summary: "Nothing to stop",
      detail: `No prompt ${where} is running or waiting.`,
    };
  }
  const count = (action) => plan.filter((step) => step.action === action).length;
  const parts = [];
  if (count("interrupt")) parts.push(`${count("interrupt")} running here`);
  if (count("delete")) parts.push(`${count("delete")} waiting here`);
  if (count("cancel")) parts.push(`${count("cancel")} elsewhere`);
  const failed = (results ?? []).filter((result) => result && !result.ok);
  const detail = `${plural(plan.length, "prompt")} ${where}: ${parts.join(", ")}.`;
  if (failed.length === 0) return { severity: "info", summary: "Stopping", detail };
  const reasons = [...new Set(failed.map((result) => result.message))].join("; ");
  return {
    severity: "warn",
    summary: `${plural(failed.length, "prompt")} could not be stopped`,
    detail: `${detail} ${reasons}`,
  };
}
