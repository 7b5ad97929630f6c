// Parallel Runs: "finished while away". Which finished prompts to tell the user about, and in
// what words. Pure: a function of what was seen before, the store's prompts now and what is on
// screen; no DOM, no `app`/`api` import.
//
// A prompt is worth a notice when the user could not have watched it finish: its workflow tab
// is not the one on screen (an in-page toast, with a way to switch to that tab), or the browser
// tab itself is hidden (a desktop notification, when the user allowed them; the visible
// workflow's prompts count too, since nothing of the page is on screen). Only the user's own
// prompts count: queued from this browser tab (its client id) and in the "Show prompts from"
// scope. Only a finish this page saw happen counts: a prompt first seen already finished (the
// page load's or a reconnect's snapshot) never gives a notice. An interrupted prompt gives none:
// a Stop is the user's own act (the frontend's Stop, Stop all, a row's stop button, or another
// client's, in which case it is not this tab's prompt to tell about), and a notice would only
// echo it; the panel still shows it as interrupted.

import { isTerminal } from "./records.js";

/** Outcomes that give a notice (interrupted is left out on purpose, see above). */
export const NOTICE_OUTCOMES = Object.freeze(["success", "error"]);
/** How a prompt stands in `seen`: still to finish (maybe), or finished and settled. */
const OPEN = "open";
const DONE = "done";
const MESSAGE_MAX = 160; // characters of an error message in a toast's one line

/** An outcome that is final: explicit, not only inferred from `executing null`. */
function settled(prompt) {
  return isTerminal(prompt.status) && !prompt.status_inferred;
}

/**
 * One pass over the store's prompts. `seen` (Map prompt_id -> "open" | "done", or null on the
 * first pass) is what the previous pass returned; `view` says what is on screen now:
 * `{visibleWorkflowId, pageHidden, clientId, inScope(prompt)}`. Returns `{seen, notices}`:
 * the map for the next pass (only the prompts given, so it stays as small as the store) and
 * one notice per prompt that settled since the last pass and deserves one:
 * `{prompt_id, workflow_id, outcome, message, toast, desktop}`. `seen` is not changed.
 */
export function awayNotices(seen, prompts, view) {
  const before = seen ?? new Map();
  const next = new Map();
  const notices = [];
  for (const prompt of prompts) {
    const id = prompt?.prompt_id;
    if (id === undefined || id === null) continue;
    const was = before.get(id);
    if (!settled(prompt)) {
      next.set(id, OPEN);
      continue;
    }
    next.set(id, DONE);
    if (was !== OPEN) continue; // first seen finished, or told already
    const notice = noticeFor(prompt, view);
    if (notice) notices.push(notice);
  }
  return { seen: next, notices };
}

/** The notice for a prompt that just settled, or null when it deserves none. */
function noticeFor(prompt, view) {
  const { visibleWorkflowId = null, pageHidden = false, clientId = null, inScope } = view;
  if (!NOTICE_OUTCOMES.includes(prompt.status)) return null;
  if (!clientId || prompt.client_id !== clientId) return null; // not queued from this tab
  if (typeof inScope === "function" && !inScope(prompt)) return null;
  const workflowId = prompt.workflow_id ?? null;
  if (workflowId === null) return null; // no tab to name or switch to
  const toast = workflowId !== visibleWorkflowId;
  const desktop = Boolean(pageHidden);
  if (!toast && !desktop) return null; // the user watched it finish
  return {
    prompt_id: prompt.prompt_id,
    workflow_id: workflowId,
    outcome: prompt.status,
    message: prompt.status === "error" ? errorLine(prompt.error) : null,
    toast,
    desktop,
  };
}

/** One line of an error for a toast: the message's first line, shortened. */
export function errorLine(error) {
  const text = typeof error === "string" ? error : (error?.message ?? "");
  const line = String(text).trim().split("\n")[0].trim();
  return line.length > MESSAGE_MAX ? `${line.slice(0, MESSAGE_MAX - 1)}…` : line;
}

/**
 * The words of a notice, for a toast or a desktop notification: "<name> finished", or
 * "<name> failed: <message>". `name` is the workflow tab's name.
 */
export function noticeTitle(notice, name) {
  const label = name || "A workflow";
  if (notice.outcome !== "error") return `${label} finished`;
  return notice.message ? `${label} failed: ${notice.message}` : `${label} failed`;
}

/**
 * A tracker holding `seen` between passes, and the ids already told about (bounded), so that
 * a prompt gives at most one notice even if it leaves the store and comes back.
 * `next(prompts, view)` returns the notices of this pass.
 */
export function createAwayTracker({ remember = 1000 } = {}) {
  let seen = null;
  const told = new Set();
  return {
    next(prompts, view) {
      const pass = awayNotices(seen, prompts, view);
      seen = pass.seen;
      const fresh = pass.notices.filter((notice) => !told.has(notice.prompt_id));
      for (const notice of fresh) {
        told.add(notice.prompt_id);
        if (told.size > remember) told.delete(told.values().next().value);
      }
      return fresh;
    },
  };
}
