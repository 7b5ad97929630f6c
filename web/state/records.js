// Parallel Runs: one prompt's record (the public PromptState plus the store's bookkeeping) and
// its status transitions: queued -> running -> success | error | interrupted.
//
// PromptState objects are live, read-only views: the store updates them in place (cheap for
// high-rate progress events) and bumps the prompt's `rev` (and the store's version) on every
// change.

import { fold } from "./nodes.js";

/** Terminal statuses never change back (sticky), except when they were only inferred. */
export const TERMINAL_STATUSES = Object.freeze(["success", "error", "interrupted"]);
const STATUS_RANK = { queued: 0, running: 1, success: 2, error: 2, interrupted: 2 };

/** A status the store knows (job summaries may carry others, which are ignored). */
export function isStatus(status) {
  return status in STATUS_RANK;
}

/** A finished prompt: most events are ignored from then on. */
export function isTerminal(status) {
  return status === "success" || status === "error" || status === "interrupted";
}

/** PromptState with the same keys as always; `nodes`/`running_nodes` read through `view`. */
function newPromptState(promptId, view) {
  return {
    prompt_id: promptId,
    status: "queued",
    executor: null,
    client_id: null,
    workflow_id: null,
    number: null,
    queued_at: null,
    started_at: null,
    finished_at: null,
    get nodes() {
      return view.nodes();
    },
    node_ids: null,
    get running_nodes() {
      return view.running();
    },
    current_node: null,
    progress_text: {},
    preview: null,
    outputs: {},
    error: null,
    warning: null, // the remote side is failing to answer; the prompt may still recover
    remote_status: null,
    status_inferred: false,
    rev: 0,
  };
}

/**
 * Internal record: the public PromptState (`s`) plus the node table and the pending map.
 * `seq` orders prompts by creation; `touched` is the store version of the last change.
 */
export function newRecord(id, seq, version) {
  const rec = {
    s: null,
    seq,
    touched: version,
    hasProgressState: false,
    /** nodeId -> node entry (what PromptState.nodes shows once folded). */
    nodes: {},
    /** Known node ids in creation order (walked instead of the JSON map, no allocation). */
    ids: [],
    running: [],
    /** Latest progress_state map not folded yet (by reference), and its tick. */
    pending: null,
    pendingTick: 0,
    /** Latest progress_state map received (duplicate detection). */
    last: null,
    /** Key whose entry differed last time a map was compared in full. */
    hotKey: null,
    /** Counts progress_state maps; `progress` stamps nodes with it (newer values win). */
    tick: 0,
    valueTick: {},
  };
  // Reading nodes/running_nodes folds the pending map first, so readers never see it stale.
  const view = {
    nodes() {
      if (rec.pending !== null) fold(rec);
      return rec.nodes;
    },
    running() {
      if (rec.pending !== null) fold(rec);
      return rec.running;
    },
  };
  rec.s = newPromptState(id, view);
  return rec;
}

/** Mark a record changed in the store's next version; returns true for `return touch(...)`. */
export function touch(reg, rec) {
  rec.s.rev += 1;
  rec.touched = reg.version + 1;
  return true;
}

/**
 * Move a prompt forward (queued -> running -> terminal). Terminal is sticky; an inferred
 * terminal status (e.g. from `executing null` without execution_success) yields to an explicit one.
 */
export function advance(reg, rec, status, at, { inferred = false } = {}) {
  const s = rec.s;
  if (!(status in STATUS_RANK)) return false;
  if (isTerminal(s.status)) {
    if (!s.status_inferred || inferred || !isTerminal(status)) return false;
    if (s.status === status) {
      s.status_inferred = false;
      return touch(reg, rec);
    }
  } else if (STATUS_RANK[status] < STATUS_RANK[s.status]) {
    return false;
  } else if (s.status === status) {
    return false;
  }
  if (isTerminal(status) && rec.pending !== null) fold(rec);
  s.status = status;
  s.status_inferred = inferred;
  if (status === "running") s.started_at ??= at ?? reg.now();
  if (isTerminal(status)) finish(reg, rec, at);
  return touch(reg, rec);
}

/** A prompt just finished: stamp it, clear what runs, and queue it for pruning (newest last). */
function finish(reg, rec, at) {
  const s = rec.s;
  s.finished_at = at ?? s.finished_at ?? reg.now();
  s.current_node = null;
  rec.running = [];
  reg.finishedOrder.delete(s.prompt_id);
  reg.finishedOrder.add(s.prompt_id);
}

/** Activity (progress, executing, ...) means the prompt runs, unless it already finished. */
export function markActive(reg, rec) {
  if (isTerminal(rec.s.status)) return false;
  return rec.s.status === "queued" ? advance(reg, rec, "running") : false;
}

/** Tell the owner a preview left the store, so the DOM layer can revoke its object URL. */
export function releasePreview(reg, preview, promptId, reason) {
  if (preview && reg.onPreviewEvicted) reg.onPreviewEvicted(preview, promptId, reason);
}
