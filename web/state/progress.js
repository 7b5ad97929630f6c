// Parallel Runs: folding ComfyUI's execution events (execution_start, executing, progress,
// progress_state, executed, execution_cached, progress_text) into a prompt's record.
//
// Events are `{ type, data }` exactly as ComfyUI sends them or as the frontend's `api`
// re-dispatches them (for example `executing` arrives either as `{node, display_node, prompt_id}`
// or, from `api`, as a bare node id string / null). Each handler returns true when it changed
// state.

import { resolve } from "./attribution.js";
import { addNode, applyProgress, fold, receiveMap, refreshRunningNodes, setNode } from "./nodes.js";
import { advance, isTerminal, markActive, touch } from "./records.js";
import { ensure } from "./registry.js";
import { eventMillis, idOf, mergeOutput, sameJson } from "./values.js";

/** The prompt starts; the server's timestamp replaces a start time guessed from earlier events. */
function onExecutionStart(reg, data) {
  const rec = ensure(reg, data?.prompt_id);
  if (!rec || isTerminal(rec.s.status)) return false;
  const at = eventMillis(data.timestamp);
  let changed = advance(reg, rec, "running", at ?? undefined);
  if (at !== null && rec.s.started_at !== at) {
    rec.s.started_at = at;
    changed = touch(reg, rec);
  }
  return changed;
}

/** A node starts (or, with node null, the prompt is over). */
function onExecuting(reg, data) {
  const isObject = data !== null && typeof data === "object";
  const nodeId = idOf(isObject ? (data.node ?? null) : data);
  const displayId = isObject ? idOf(data.display_node) : null;
  const rec = resolve(reg, isObject ? data.prompt_id : null, nodeId);
  if (!rec) return false;
  const s = rec.s;
  if (nodeId === null) {
    // Sent after execution_success/error; alone it only tells us the prompt is over.
    if (isTerminal(s.status)) return false;
    return advance(reg, rec, "success", undefined, { inferred: true });
  }
  if (isTerminal(s.status)) return false;
  if (rec.pending !== null) fold(rec);
  let changed = markActive(reg, rec);
  const previous = s.current_node;
  if (previous !== nodeId) {
    // Servers without progress_state signal a node's end only by the next `executing`.
    if (previous !== null && !rec.hasProgressState) setNode(rec, previous, { state: "finished" });
    s.current_node = nodeId;
    changed = true;
  }
  const fields = displayId && displayId !== nodeId ? { display_node_id: displayId } : {};
  if (!rec.nodes[nodeId]) fields.state = "running";
  if (setNode(rec, nodeId, fields) > 0) changed = true;
  if (refreshRunningNodes(rec)) changed = true;
  return changed ? touch(reg, rec) : false;
}

/** One node's step count (value/max). */
function onProgress(reg, data) {
  const nodeId = idOf(data?.node);
  const rec = resolve(reg, data?.prompt_id, nodeId);
  if (!rec || nodeId === null || isTerminal(rec.s.status)) return false;
  const changed = markActive(reg, rec);
  return applyProgress(rec, nodeId, data.value, data.max) || changed ? touch(reg, rec) : false;
}

/**
 * The prompt's full node map. O(1) per message in the usual case: the map is kept by reference
 * and folded when read; a map equal to the previous one changes nothing (no version bump).
 */
function onProgressState(reg, data) {
  const rec = ensure(reg, data?.prompt_id);
  if (!rec || isTerminal(rec.s.status)) return false;
  rec.hasProgressState = true;
  const changed = markActive(reg, rec);
  const next = data.nodes;
  if (next === null || typeof next !== "object") return changed;
  return receiveMap(rec, next) ? touch(reg, rec) : changed;
}

/** A node's output; the node is finished unless the prompt already is. */
function onExecuted(reg, data) {
  const nodeId = idOf(data?.node);
  const rec = resolve(reg, data?.prompt_id, nodeId);
  if (!rec || nodeId === null) return false;
  const s = rec.s;
  if (rec.pending !== null) fold(rec);
  let changed = markActive(reg, rec);
  const output = data.merge ? mergeOutput(s.outputs[nodeId], data.output) : data.output;
  if (output !== undefined && output !== null && !sameJson(s.outputs[nodeId], output)) {
    s.outputs[nodeId] = output;
    changed = true;
  }
  if (!isTerminal(s.status) && setNode(rec, nodeId, { state: "finished" }) > 0) {
    refreshRunningNodes(rec);
    changed = true;
  }
  return changed ? touch(reg, rec) : false;
}

/** Nodes served from cache count as finished (full progress) without ever running. */
function onExecutionCached(reg, data) {
  const rec = ensure(reg, data?.prompt_id);
  if (!rec || isTerminal(rec.s.status)) return false;
  if (rec.pending !== null) fold(rec);
  let changed = markActive(reg, rec);
  for (const raw of data.nodes ?? []) {
    const nodeId = idOf(raw);
    if (nodeId === null || rec.nodes[nodeId]) continue;
    const node = addNode(rec, nodeId, "finished");
    node.value = 1;
    node.cached = true;
    changed = true;
  }
  return changed ? touch(reg, rec) : false;
}

/** A node's progress text, filed under its prompt (stock frames may lack the prompt id). */
function onProgressText(reg, data) {
  const nodeId = idOf(data?.nodeId ?? data?.node);
  if (nodeId === null) return false;
  const rec = resolve(reg, data.prompt_id, nodeId);
  if (!rec) return false;
  const text = data.text === undefined || data.text === null ? "" : String(data.text);
  if (rec.s.progress_text[nodeId] === text) return false;
  rec.s.progress_text[nodeId] = text;
  markActive(reg, rec);
  const display = idOf(data.display_node);
  if (display && display !== nodeId && rec.s.nodes[nodeId]) {
    setNode(rec, nodeId, { display_node_id: display });
  }
  return touch(reg, rec);
}

/** Event type -> handler(reg, data); the package's parallel.progress_text has the stock shape. */
export const PROGRESS_HANDLERS = Object.freeze({
  execution_start: onExecutionStart,
  executing: onExecuting,
  progress: onProgress,
  progress_state: onProgressState,
  executed: onExecuted,
  execution_cached: onExecutionCached,
  progress_text: onProgressText,
  "parallel.progress_text": onProgressText,
});
