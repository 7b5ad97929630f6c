// Parallel Runs: the browser tab title says how many prompts run and how far they are,
// e.g. "[2 running 45%] *workflow - ComfyUI" or "[1 running +1 queued 45%] ComfyUI" (one local
// prompt runs at a time; the others wait), and is the frontend's own title again when idle.
//
// What the frontend writes (useBrowserTabTitle, the same on the pinned 1.32 and newest 1.58):
//   idle:             "<*>name - ComfyUI" ("*": unsaved; "ComfyUI" with no workflow)
//   one prompt runs:  "[P%]<*>name - ComfyUI"          P: its single active prompt's nodes done
//   a node runs:      "[P%][Q%] NodeType"              Q: that node's own progress
//   nodes run:        "[P%][N nodes running]"          (words translated)
// (P is left out while it thinks nothing runs, and the browser reads " *" as "*".) Its one
// active prompt is rarely the one on screen and never the others, so while ours run we put
// our one indicator in place of its percentages; idle, its title is left as it is.

import { follow } from "./follow.js";

const OURS = /^\[\d+ running (\+\d+ queued )?\d+%\] /;
// Its "[P%]": right before "[", "*", a name, or the end; a space only before " *".
const STOCK_TOTAL = /^\[\d+%\](?! (?!\*))/;
const STOCK_NODE = /^\[\d+%\] (?=\S)/;
const STOCK_NODES = /^\[\d+ [^\]\d%][^\]]*\]$/;
const DEFAULT_TITLE = "ComfyUI";

/**
 * Pure: the frontend's title without ours and without its own progress: `{rest, node}`, where
 * `node` says that the rest is the running node's label (or nothing), not the workflow's name.
 */
export function stockTitleRest(title) {
  let rest = String(title ?? "").replace(OURS, "").trim();
  rest = rest.replace(STOCK_TOTAL, "").trim();
  if (STOCK_NODES.test(rest)) return { rest: "", node: true };
  if (STOCK_NODE.test(rest)) return { rest: rest.replace(STOCK_NODE, "").trim(), node: true };
  return { rest, node: false };
}

/**
 * Pure: what the frontend writes for its workflow part, as the browser reads it back:
 * "*name - ComfyUI" while unsaved (never with auto-save), "ComfyUI" without a workflow or
 * with the old menu. `workflow`: {filename, isPersisted, isModified}.
 */
export function workflowTitleOf(workflow, { autoSave = false, newMenu = true } = {}) {
  const name = workflow?.filename;
  if (!newMenu || !name) return DEFAULT_TITLE;
  const unsaved = !autoSave && (!workflow.isPersisted || !!workflow.isModified);
  return `${unsaved ? "*" : ""}${name} - ComfyUI`;
}

/**
 * Pure: the title for the frontend's `base` given aggregateProgress() = {running, fraction}
 * and `queued`. While prompts are in flight ours replaces the frontend's percentages (and its
 * running node's label with `workflowTitle`, when given); idle, `base` is returned as it is,
 * less any prefix of ours.
 */
export function titleFor(base, { running, fraction }, queued = 0, workflowTitle = null) {
  const plain = String(base ?? "").replace(OURS, "");
  if (!running && !queued) return plain;
  const { rest, node } = stockTitleRest(plain);
  const shown = (node ? (workflowTitle ?? rest) : rest) || workflowTitle || DEFAULT_TITLE;
  const waiting = queued ? `+${queued} queued ` : "";
  return `[${running} running ${waiting}${Math.round(fraction * 100)}%] ${shown}`;
}

/** The frontend's own workflow part for the tab on screen, from `app` (null when unknown). */
export function appWorkflowTitle(app) {
  const workflow = app?.extensionManager?.workflow?.activeWorkflow;
  if (!workflow) return null;
  const setting = (id) => app.extensionManager?.setting?.get?.(id);
  return workflowTitleOf(workflow, {
    autoSave: setting("Comfy.Workflow.AutoSave") === "after delay",
    newMenu: setting("Comfy.UseNewMenu") !== "Disabled",
  });
}

/**
 * Keep document.title prefixed while prompts run. The frontend rewrites the title itself
 * (workflow name, its own progress), so a MutationObserver re-applies ours after it; ours is
 * written only when it differs, and the frontend writes only when its own state changes, so
 * the two never loop. `workflowTitle()` names the workflow when the frontend shows a node.
 */
export function installTitle({ doc, store, scope, aggregate, workflowTitle = () => null }) {
  let ours = null; // the title we wrote last, as the browser reads it back
  let stock = doc.title; // the frontend's latest, restored as it was when ours end
  const apply = () => {
    if (doc.title !== ours) stock = doc.title;
    const shown = scope.shown(store.all());
    const queued = shown.filter((s) => s.status === "queued").length;
    const next = titleFor(stock, aggregate(store, shown), queued, workflowTitle());
    if (next !== doc.title) {
      doc.title = next;
      ours = doc.title;
    }
  };
  const head = doc.querySelector("head");
  const stop = follow({
    store,
    scope,
    apply,
    watch: [[head, { subtree: true, childList: true, characterData: true }]],
  });
  return {
    refresh: apply,
    uninstall() {
      stop();
      if (doc.title === ours) doc.title = stock.replace(OURS, "");
    },
  };
}
