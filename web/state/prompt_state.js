// Parallel Runs: per-prompt execution state, fed by ComfyUI's websocket events.
//
// Pure module: no DOM, no `app`/`api` import, no module-level mutable state. Everything lives in
// the store instance returned by createStore(), so tests and benchmarks can run many side by side.
//
// Events are `{ type, data }` exactly as ComfyUI sends them or as the frontend's `api` re-dispatches
// them (for example `executing` arrives either as `{node, display_node, prompt_id}` or, from `api`,
// as a bare node id string / null). Events that carry no prompt id are attributed only when that
// is unambiguous (exactly one candidate prompt); otherwise they are counted and dropped.
//
// PromptState objects are live, read-only views: the store updates them in place (cheap for
// high-rate progress events) and bumps `store.version` and the prompt's own `rev` on every change.
//
// progress_state is the hot path: ComfyUI sends the prompt's FULL node map with every step, and
// walking a JSON object costs ~10x a single property read. So the latest map is kept by reference
// (O(1) per message) and folded into `nodes` lazily, when `nodes`/`running_nodes` are read. The
// fold keeps the guarantees of an eager merge: finished/error nodes stay done, `progress` values
// newer than the pending map win, and a pending map is folded at once (not dropped) when the next
// one would lose a known node or turn a known done node back to running (out-of-order messages).

/** Terminal statuses never change back (sticky), except when they were only inferred. */
export const TERMINAL_STATUSES = Object.freeze(["success", "error", "interrupted"]);
const STATUS_RANK = { queued: 0, running: 1, success: 2, error: 2, interrupted: 2 };
/** How many pruned prompt ids are remembered so late events cannot resurrect them. */
const TOMBSTONE_FACTOR = 4;
const TOMBSTONE_MIN = 256;

// ---------------------------------------------------------------------------------------------
// Small pure helpers
// ---------------------------------------------------------------------------------------------

/** ComfyUI event timestamps are ms since epoch; anything else means "no timestamp". */
function eventMillis(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** Job summaries may carry ms, seconds (Python time.time()) or ISO strings. */
function toMillis(value) {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value === "string") {
    const asNumber = Number(value);
    if (Number.isFinite(asNumber)) return toMillis(asNumber);
    const parsed = Date.parse(value);
    return Number.isFinite(parsed) ? parsed : null;
  }
  if (typeof value !== "number" || !Number.isFinite(value)) return null;
  return value < 1e11 ? Math.round(value * 1000) : value;
}

function isTerminal(status) {
  return status === "success" || status === "error" || status === "interrupted";
}

function isDone(nodeState) {
  return nodeState === "finished" || nodeState === "error";
}

function idOf(value) {
  return value === null || value === undefined ? null : String(value);
}

function sameJson(a, b) {
  if (a === b) return true;
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch {
    return false;
  }
}

/** `executed` with `merge: true` appends list outputs (e.g. images of a batch) instead of replacing. */
function mergeOutput(previous, next) {
  if (!previous || typeof previous !== "object" || !next || typeof next !== "object") return next;
  const merged = { ...previous };
  for (const [key, value] of Object.entries(next)) {
    merged[key] =
      Array.isArray(previous[key]) && Array.isArray(value) ? [...previous[key], ...value] : value;
  }
  return merged;
}

/** Node entries share one shape (keeps property access monomorphic on the hot path). */
function newNode(state) {
  return {
    value: 0,
    max: 1,
    state,
    display_node_id: null,
    parent_node_id: null,
    real_node_id: null,
    cached: false,
  };
}

function updateValues(node, rawValue, rawMax) {
  const value = typeof rawValue === "number" ? rawValue : Number(rawValue) || 0;
  const max = typeof rawMax === "number" && rawMax > 0 ? rawMax : Number(rawMax) || 1;
  if (node.value === value && node.max === max) return false;
  node.value = value;
  node.max = max;
  return true;
}

/** Finished/error nodes do not go back to running or pending (out-of-order messages). */
function updateState(node, state) {
  if (node.state === state) return false;
  if (isDone(node.state) && !isDone(state)) return false;
  node.state = state;
  return true;
}

/** Copy the display/parent/real ids of a progress_state entry (subgraph nodes). */
function updateIds(node, incoming) {
  if (
    node.display_node_id === incoming.display_node_id &&
    node.real_node_id === incoming.real_node_id &&
    (node.parent_node_id === incoming.parent_node_id ||
      (node.parent_node_id === null && incoming.parent_node_id === undefined))
  ) {
    return false;
  }
  let changed = false;
  const display = incoming.display_node_id;
  if (display !== undefined && display !== null && node.display_node_id !== String(display)) {
    node.display_node_id = String(display);
    changed = true;
  }
  const parent = incoming.parent_node_id;
  if (parent !== undefined && parent !== null && node.parent_node_id !== String(parent)) {
    node.parent_node_id = String(parent);
    changed = true;
  }
  const real = incoming.real_node_id;
  if (real !== undefined && real !== null && node.real_node_id !== String(real)) {
    node.real_node_id = String(real);
    changed = true;
  }
  return changed;
}

/** Default for listener errors: report them as uncaught, outside dispatch. */
function rethrowLater(error) {
  queueMicrotask(() => {
    throw error;
  });
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

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/**
 * Create a per-prompt state store.
 * @param {{cap?: number, now?: () => number,
 *          onPreviewEvicted?: (preview: object, promptId: string, reason: string) => void,
 *          onEvict?: (preview: object, promptId: string, reason: string) => void}} [options]
 *   cap: how many finished prompts to keep (running/queued prompts are never pruned).
 *   onPreviewEvicted (alias onEvict): called when a preview leaves the store ("replaced",
 *   "pruned", "removed", "dropped") so the DOM layer can revoke object URLs it created.
 *   onListenerError: receives errors thrown by subscribers (default: rethrown in a microtask).
 */
export function createStore({
  cap = 50,
  now = () => Date.now(),
  onPreviewEvicted,
  onEvict,
  onListenerError = rethrowLater,
} = {}) {
  const evictHook = onPreviewEvicted ?? onEvict ?? null;
  /** prompt_id -> {s: PromptState, seq, touched, hasProgressState} */
  const records = new Map();
  /** Finished prompt ids in the order they finished (Set keeps insertion order). */
  const finishedOrder = new Set();
  /** Recently pruned/removed ids; bounded FIFO so memory stays flat. */
  const tombstones = new Set();
  const listeners = new Set();
  let limit = normaliseCap(cap);
  let version = 0;
  let seq = 0;
  let sortedCache = null;
  let sortedVersion = -1;
  let unattributed = 0;
  let queueRemaining = null;
  let sessionId = null;
  let lastId = null;
  let lastRec = null;

  function normaliseCap(value) {
    const n = Math.floor(Number(value));
    return Number.isFinite(n) && n >= 0 ? n : 50;
  }

  // ---- records --------------------------------------------------------------------------------

  /** Existing record, or a new one; null when the id is missing or was pruned recently. */
  function ensure(promptId) {
    // Events of one prompt come in bursts: remember the last lookup (cleared by forget()).
    if (promptId === lastId && lastRec !== null) return lastRec;
    const existing = records.get(promptId);
    if (existing !== undefined) {
      lastId = promptId;
      lastRec = existing;
      return existing;
    }
    const id = idOf(promptId);
    if (id === null || tombstones.has(id)) return null;
    let rec = records.get(id);
    if (!rec) {
      rec = newRecord(id);
      records.set(id, rec);
    }
    return rec;
  }

  /** Internal record: the public PromptState plus the node table and the pending map. */
  function newRecord(id) {
    const rec = {
      s: null,
      seq: ++seq,
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

  function touch(rec) {
    rec.s.rev += 1;
    rec.touched = version + 1;
    return true;
  }

  function evictPreview(rec, reason) {
    const old = rec.s.preview;
    if (old && evictHook) evictHook(old, rec.s.prompt_id, reason);
  }

  function dropPreview(preview, promptId) {
    if (preview && evictHook) evictHook(preview, promptId, "dropped");
  }

  function forget(id, reason) {
    const rec = records.get(id);
    if (!rec) return;
    records.delete(id);
    if (lastRec === rec) {
      lastId = null;
      lastRec = null;
    }
    finishedOrder.delete(id);
    evictPreview(rec, reason);
    tombstones.add(id);
    const tombCap = Math.max(TOMBSTONE_MIN, limit * TOMBSTONE_FACTOR);
    while (tombstones.size > tombCap) tombstones.delete(tombstones.values().next().value);
  }

  /** Drop the oldest finished prompts beyond the cap; running/queued prompts are never pruned. */
  function prune() {
    let pruned = false;
    while (finishedOrder.size > limit) {
      forget(finishedOrder.values().next().value, "pruned");
      pruned = true;
    }
    return pruned;
  }

  // ---- status transitions ---------------------------------------------------------------------

  /**
   * Move a prompt forward (queued -> running -> terminal). Terminal is sticky; an inferred
   * terminal status (e.g. from `executing null` without execution_success) yields to an explicit one.
   */
  function advance(rec, status, at, { inferred = false } = {}) {
    const s = rec.s;
    if (!(status in STATUS_RANK)) return false;
    if (isTerminal(s.status)) {
      if (!s.status_inferred || inferred || !isTerminal(status)) return false;
      if (s.status === status) {
        s.status_inferred = false;
        return touch(rec);
      }
    } else if (STATUS_RANK[status] < STATUS_RANK[s.status]) {
      return false;
    } else if (s.status === status) {
      return false;
    }
    if (isTerminal(status) && rec.pending !== null) fold(rec);
    s.status = status;
    s.status_inferred = inferred;
    if (status === "running") s.started_at ??= at ?? now();
    if (isTerminal(status)) {
      s.finished_at = at ?? s.finished_at ?? now();
      s.current_node = null;
      rec.running = [];
      finishedOrder.delete(s.prompt_id);
      finishedOrder.add(s.prompt_id);
    }
    return touch(rec);
  }

  /** Activity (progress, executing, ...) means the prompt runs, unless it already finished. */
  function markActive(rec) {
    if (isTerminal(rec.s.status)) return false;
    return rec.s.status === "queued" ? advance(rec, "running") : false;
  }

  /** Recompute running_nodes; the array is replaced (never mutated) when it changes. */
  function refreshRunningNodes(rec) {
    const s = rec.s;
    const nodes = rec.nodes;
    const previous = rec.running;
    let count = 0;
    let same = true;
    let current = s.current_node !== null;
    for (const nodeId in nodes) {
      if (nodes[nodeId].state !== "running") continue;
      if (previous[count] !== nodeId) same = false;
      if (nodeId === s.current_node) current = false;
      count += 1;
    }
    if (current && previous[count++] !== s.current_node) same = false;
    if (same && count === previous.length) return false;
    const running = [];
    for (const nodeId in nodes) if (nodes[nodeId].state === "running") running.push(nodeId);
    if (s.current_node !== null && !running.includes(s.current_node)) running.push(s.current_node);
    rec.running = running;
    return true;
  }

  /** Update one node; returns 0 (no change), 1 (values changed) or 2 (created / state changed). */
  function setNode(rec, nodeId, { value, max, state, display_node_id: display } = {}) {
    let node = rec.nodes[nodeId];
    let changed = 0;
    if (!node) {
      node = addNode(rec, nodeId, state ?? "running");
      changed = 2;
    } else if (state !== undefined && updateState(node, state)) {
      changed = 2;
    }
    if (value !== undefined && updateValues(node, value, max) && changed === 0) changed = 1;
    if (display !== undefined && node.display_node_id !== display) {
      node.display_node_id = display;
      if (changed === 0) changed = 1;
    }
    return changed;
  }

  function addNode(rec, nodeId, state) {
    const node = newNode(state);
    rec.nodes[nodeId] = node;
    rec.ids.push(nodeId);
    return node;
  }

  // ---- lazy progress_state --------------------------------------------------------------------

  /** Merge the pending progress_state map into the node table (done states stay done). */
  function fold(rec) {
    const incomingNodes = rec.pending;
    if (incomingNodes === null) return;
    rec.pending = null;
    const known = rec.nodes;
    const stamps = rec.valueTick;
    const tick = rec.pendingTick;
    let stateChanged = false;
    for (const key in incomingNodes) {
      const incoming = incomingNodes[key];
      if (incoming === null || typeof incoming !== "object") continue;
      const id =
        incoming.node_id === undefined || incoming.node_id === null
          ? key
          : String(incoming.node_id);
      let node = known[id];
      if (node === undefined) {
        node = addNode(rec, id, incoming.state ?? "running");
        stateChanged = true;
      } else if (incoming.state !== undefined && updateState(node, incoming.state)) {
        stateChanged = true;
      }
      // A `progress` event that arrived after this map carries newer numbers for that node.
      if (stamps[id] !== tick) updateValues(node, incoming.value, incoming.max);
      updateIds(node, incoming);
    }
    if (stateChanged) refreshRunningNodes(rec);
  }

  /**
   * May `next` replace the pending map unfolded? Not when the pending map knows a node `next`
   * lacks, or has a node done that `next` shows running (an older message arriving late).
   */
  function supersedes(rec, pendingNodes, next) {
    const ids = rec.ids;
    for (let i = 0; i < ids.length; i += 1) {
      const before = pendingNodes[ids[i]];
      if (before === undefined || before === null) continue;
      const after = next[ids[i]];
      if (after === undefined || after === null) return false;
      if (isDone(before.state) && !isDone(after.state)) return false;
    }
    return true;
  }

  function sameEntry(a, b) {
    return (
      a === b ||
      (a !== undefined &&
        b !== undefined &&
        a !== null &&
        b !== null &&
        a.value === b.value &&
        a.max === b.max &&
        a.state === b.state &&
        a.node_id === b.node_id &&
        a.display_node_id === b.display_node_id &&
        a.parent_node_id === b.parent_node_id &&
        a.real_node_id === b.real_node_id)
    );
  }

  /**
   * Same entries as the previous map (e.g. a re-sent message)? Remembers the first differing
   * key in rec.hotKey, so the next message can usually be told apart by one entry.
   */
  function sameMap(rec, previous, next) {
    let count = 0;
    for (const key in previous) {
      if (!sameEntry(previous[key], next[key])) {
        rec.hotKey = key;
        return false;
      }
      count += 1;
    }
    for (const key in next) {
      count -= 1;
      if (count < 0 || !(key in previous)) return false;
    }
    return count === 0;
  }

  // ---- attribution of events that carry no prompt id --------------------------------------------

  function activeRecords() {
    const out = [];
    for (const rec of records.values()) if (rec.s.status === "running") out.push(rec);
    return out;
  }

  /** The prompt running `nodeId`, else the only running prompt; null when ambiguous. */
  function attribute(nodeId) {
    const running = activeRecords();
    if (running.length === 1) return running[0];
    if (nodeId === null || running.length === 0) return null;
    const owners = running.filter(
      (rec) => rec.s.current_node === nodeId || rec.s.nodes[nodeId]?.state === "running",
    );
    return owners.length === 1 ? owners[0] : null;
  }

  function resolve(promptId, nodeId) {
    const id = idOf(promptId);
    if (id !== null) return ensure(id);
    const rec = attribute(nodeId);
    if (!rec) unattributed += 1;
    return rec;
  }

  // ---- event handlers: each returns true when the state changed ---------------------------------

  function onExecutionStart(data) {
    const rec = ensure(data?.prompt_id);
    if (!rec || isTerminal(rec.s.status)) return false;
    const at = eventMillis(data.timestamp);
    let changed = advance(rec, "running", at ?? undefined);
    if (at !== null && rec.s.started_at !== at) {
      rec.s.started_at = at;
      changed = touch(rec);
    }
    return changed;
  }

  function onExecuting(data) {
    const isObject = data !== null && typeof data === "object";
    const nodeId = idOf(isObject ? (data.node ?? null) : data);
    const displayId = isObject ? idOf(data.display_node) : null;
    const rec = resolve(isObject ? data.prompt_id : null, nodeId);
    if (!rec) return false;
    const s = rec.s;
    if (nodeId === null) {
      // Sent after execution_success/error; alone it only tells us the prompt is over.
      if (isTerminal(s.status)) return false;
      return advance(rec, "success", undefined, { inferred: true });
    }
    if (isTerminal(s.status)) return false;
    if (rec.pending !== null) fold(rec);
    let changed = markActive(rec);
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
    return changed ? touch(rec) : false;
  }

  function onProgress(data) {
    const nodeId = idOf(data?.node);
    const rec = resolve(data?.prompt_id, nodeId);
    if (!rec || nodeId === null || isTerminal(rec.s.status)) return false;
    const changed = markActive(rec);
    // Newer than any pending progress_state map: the fold must not overwrite these numbers.
    if (rec.pending !== null) rec.valueTick[nodeId] = rec.tick;
    const node = rec.nodes[nodeId];
    if (node === undefined) {
      updateValues(addNode(rec, nodeId, "running"), data.value, data.max);
      refreshRunningNodes(rec);
      return touch(rec);
    }
    return updateValues(node, data.value, data.max) || changed ? touch(rec) : false;
  }

  /**
   * O(1) per message in the usual case: keep the map by reference and fold it when read. A map
   * equal to the previous one (a re-sent duplicate) changes nothing and does not bump version.
   */
  function onProgressState(data) {
    const rec = ensure(data?.prompt_id);
    if (!rec || isTerminal(rec.s.status)) return false;
    rec.hasProgressState = true;
    const changed = markActive(rec);
    const next = data.nodes;
    if (next === null || typeof next !== "object") return changed;
    const previous = rec.last;
    if (previous === next) return changed;
    if (previous !== null) {
      // Cheap check first: the executing node's entry is what changes from step to step.
      const hot = rec.s.current_node ?? rec.hotKey;
      const quick = hot === null || sameEntry(previous[hot], next[hot]);
      if (quick && sameMap(rec, previous, next)) return changed;
    }
    const pending = rec.pending;
    if (pending !== null && !supersedes(rec, pending, next)) fold(rec);
    rec.tick += 1;
    rec.pending = next;
    rec.pendingTick = rec.tick;
    rec.last = next;
    return touch(rec);
  }

  function onExecuted(data) {
    const nodeId = idOf(data?.node);
    const rec = resolve(data?.prompt_id, nodeId);
    if (!rec || nodeId === null) return false;
    const s = rec.s;
    if (rec.pending !== null) fold(rec);
    let changed = markActive(rec);
    const output = data.merge ? mergeOutput(s.outputs[nodeId], data.output) : data.output;
    if (output !== undefined && output !== null && !sameJson(s.outputs[nodeId], output)) {
      s.outputs[nodeId] = output;
      changed = true;
    }
    if (!isTerminal(s.status) && setNode(rec, nodeId, { state: "finished" }) > 0) {
      refreshRunningNodes(rec);
      changed = true;
    }
    return changed ? touch(rec) : false;
  }

  function onExecutionCached(data) {
    const rec = ensure(data?.prompt_id);
    if (!rec || isTerminal(rec.s.status)) return false;
    if (rec.pending !== null) fold(rec);
    let changed = markActive(rec);
    for (const raw of data.nodes ?? []) {
      const nodeId = idOf(raw);
      if (nodeId === null || rec.nodes[nodeId]) continue;
      const node = addNode(rec, nodeId, "finished");
      node.value = 1;
      node.cached = true;
      changed = true;
    }
    return changed ? touch(rec) : false;
  }

  function onTerminal(status, data, error) {
    const rec = ensure(data?.prompt_id);
    if (!rec) return false;
    const wasInferredOrOpen = !isTerminal(rec.s.status) || rec.s.status_inferred;
    const changed = advance(rec, status, eventMillis(data.timestamp) ?? undefined);
    if (changed && wasInferredOrOpen) rec.s.error = error;
    return changed;
  }

  function onExecutionSuccess(data) {
    return onTerminal("success", data, null);
  }

  function onExecutionError(data) {
    return onTerminal("error", data, {
      message: data?.exception_message ?? "",
      type: data?.exception_type ?? null,
      node_id: idOf(data?.node_id),
      node_type: data?.node_type ?? null,
      traceback: data?.traceback ?? null,
      executed: data?.executed ?? null,
    });
  }

  function onExecutionInterrupted(data) {
    return onTerminal("interrupted", data, null);
  }

  function onPreview(data) {
    const promptId = data?.promptId ?? data?.jobId ?? data?.prompt_id ?? null;
    const nodeId = idOf(data?.nodeId ?? data?.node_id ?? data?.node);
    const rec = resolve(promptId, nodeId);
    const preview = {
      node: nodeId,
      display_node: idOf(data?.displayNodeId ?? data?.display_node_id) ?? nodeId,
      parent_node: idOf(data?.parentNodeId ?? data?.parent_node_id),
      real_node: idOf(data?.realNodeId ?? data?.real_node_id),
      blob_or_url: data?.blob ?? data?.url ?? null,
      at: now(),
    };
    if (!rec || isTerminal(rec.s.status)) {
      dropPreview(preview, rec?.s.prompt_id ?? idOf(promptId));
      return false;
    }
    return setPreview(rec, preview);
  }

  /** Stock `b_preview` is a bare Blob: only the single running prompt can own it. */
  function onLegacyPreview(data) {
    const running = activeRecords();
    const blob = data?.blob ?? data;
    if (running.length !== 1) {
      unattributed += 1;
      dropPreview({ node: null, blob_or_url: blob }, null);
      return false;
    }
    const rec = running[0];
    const node = rec.s.current_node;
    return setPreview(rec, {
      node,
      display_node: rec.s.nodes[node]?.display_node_id ?? node,
      parent_node: null,
      real_node: null,
      blob_or_url: blob,
      at: now(),
    });
  }

  function setPreview(rec, preview) {
    const old = rec.s.preview;
    if (old && old.blob_or_url === preview.blob_or_url && old.node === preview.node) return false;
    evictPreview(rec, "replaced");
    rec.s.preview = preview;
    markActive(rec);
    return touch(rec);
  }

  function onProgressText(data) {
    const nodeId = idOf(data?.nodeId ?? data?.node);
    if (nodeId === null) return false;
    const rec = resolve(data.prompt_id, nodeId);
    if (!rec) return false;
    const text = data.text === undefined || data.text === null ? "" : String(data.text);
    if (rec.s.progress_text[nodeId] === text) return false;
    rec.s.progress_text[nodeId] = text;
    markActive(rec);
    const display = idOf(data.display_node);
    if (display && display !== nodeId && rec.s.nodes[nodeId]) {
      setNode(rec, nodeId, { display_node_id: display });
    }
    return touch(rec);
  }

  function onStatus(data) {
    const status = data && typeof data === "object" && "status" in data ? data.status : data;
    const remaining = status?.exec_info?.queue_remaining;
    let changed = false;
    if (typeof remaining === "number" && remaining !== queueRemaining) {
      queueRemaining = remaining;
      changed = true;
    }
    const sid = data && typeof data === "object" ? idOf(data.sid) : null;
    if (sid !== null && sid !== sessionId) {
      sessionId = sid;
      changed = true;
    }
    return changed;
  }

  /** Copy descriptive fields the package knows (workflow tab, executor, ...) without downgrading. */
  function assignInfo(rec, info) {
    const s = rec.s;
    let changed = false;
    for (const key of ["executor", "client_id", "workflow_id", "number", "remote_status"]) {
      const value = info[key];
      if (value === undefined || value === null || s[key] === value) continue;
      s[key] = value;
      changed = true;
    }
    if (Array.isArray(info.node_ids) && !sameJson(s.node_ids, info.node_ids)) {
      s.node_ids = info.node_ids.map(String);
      changed = true;
    }
    for (const key of ["queued_at", "started_at", "finished_at"]) {
      const at = toMillis(info[key]);
      if (at !== null && s[key] === null) {
        s[key] = at;
        changed = true;
      }
    }
    return changed;
  }

  function onQueued(data) {
    const rec = ensure(data?.prompt_id);
    if (!rec) return false;
    let changed = assignInfo(rec, data);
    if (rec.s.queued_at === null) {
      rec.s.queued_at = now();
      changed = true;
    }
    return changed ? touch(rec) : false;
  }

  /** Apply one server-side job summary (from parallel.job or a snapshot). */
  function applyJob(job) {
    const rec = ensure(job?.prompt_id);
    if (!rec) return false;
    let changed = assignInfo(rec, job);
    if ("warning" in job && (job.warning ?? null) !== rec.s.warning) {
      rec.s.warning = typeof job.warning === "string" ? job.warning : null; // null: recovered
      changed = true;
    }
    const status = job.status;
    if (status in STATUS_RANK && advance(rec, status, toMillis(job.finished_at) ?? undefined)) {
      changed = true;
      if (status === "error" && job.error) rec.s.error = normaliseError(job.error);
    }
    if (job.outputs && typeof job.outputs === "object") {
      for (const [nodeId, output] of Object.entries(job.outputs)) {
        if (sameJson(rec.s.outputs[nodeId], output)) continue;
        rec.s.outputs[nodeId] = output;
        changed = true;
      }
    }
    return changed ? touch(rec) : false;
  }

  function normaliseError(error) {
    if (typeof error === "string") return { message: error, node_id: null, node_type: null };
    return {
      ...error,
      message: error.message ?? error.exception_message ?? "",
      node_id: idOf(error.node_id),
      node_type: error.node_type ?? null,
    };
  }

  function onJob(data) {
    return applyJob(data);
  }

  /**
   * Rebuild after a websocket reconnect. Jobs in the snapshot are merged (terminal stays sticky);
   * queued/running prompts the server no longer knows are removed, unless they changed after
   * `since_version` (the store.version read before the snapshot was requested).
   */
  function onSnapshot(data) {
    const jobs = Array.isArray(data?.jobs) ? data.jobs : [];
    const since = typeof data?.since_version === "number" ? data.since_version : null;
    const known = new Set();
    let changed = false;
    const finishedFirst = [...jobs].sort(
      (a, b) => (toMillis(a?.finished_at) ?? 0) - (toMillis(b?.finished_at) ?? 0),
    );
    for (const job of finishedFirst) {
      if (job?.prompt_id === undefined || job?.prompt_id === null) continue;
      known.add(String(job.prompt_id));
      if (applyJob(job)) changed = true;
    }
    for (const [id, rec] of [...records]) {
      if (known.has(id) || isTerminal(rec.s.status)) continue;
      if (since !== null && rec.touched > since) continue;
      forget(id, "removed");
      changed = true;
    }
    return changed;
  }

  const handlers = {
    execution_start: onExecutionStart,
    executing: onExecuting,
    progress: onProgress,
    progress_state: onProgressState,
    executed: onExecuted,
    execution_cached: onExecutionCached,
    execution_success: onExecutionSuccess,
    execution_error: onExecutionError,
    execution_interrupted: onExecutionInterrupted,
    b_preview_with_metadata: onPreview,
    b_preview: onLegacyPreview,
    progress_text: onProgressText,
    status: onStatus,
    "parallel.queued": onQueued,
    "parallel.snapshot": onSnapshot,
    "parallel.progress_text": onProgressText,
    "parallel.job": onJob,
  };

  // ---- public API -----------------------------------------------------------------------------

  function notify() {
    if (listeners.size === 0) return;
    for (const fn of listeners) {
      try {
        fn(store);
      } catch (error) {
        // One broken listener must not stop the others or corrupt dispatch.
        onListenerError(error);
      }
    }
  }

  function commit() {
    if (finishedOrder.size > limit) prune();
    version += 1;
    notify();
  }

  const store = {
    /** Apply one event; returns true when the state changed. Unknown event types are ignored. */
    dispatch(event) {
      const handler = event && handlers[event.type];
      if (!handler) return false;
      const changed = handler(event.data ?? null);
      if (changed) commit();
      return changed;
    },
    /** fn(store) after each change; returns the unsubscribe function. */
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    get(promptId) {
      return records.get(idOf(promptId))?.s;
    },
    /** Running first, then queued, then finished; newest first within each group. */
    all() {
      if (sortedVersion !== version || sortedCache === null) {
        const group = (s) => (s.status === "running" ? 0 : s.status === "queued" ? 1 : 2);
        sortedCache = [...records.values()]
          .sort((a, b) => group(a.s) - group(b.s) || b.seq - a.seq)
          .map((rec) => rec.s);
        sortedVersion = version;
      }
      return sortedCache.slice();
    },
    /** Change how many finished prompts are kept (settings UI); prunes at once. */
    setCap(n) {
      limit = normaliseCap(n);
      if (prune()) {
        version += 1;
        notify();
      }
    },
    /** Forget a prompt (e.g. the user dismissed it); late events for it are ignored. */
    remove(promptId) {
      const id = idOf(promptId);
      if (!records.has(id)) return false;
      forget(id, "removed");
      version += 1;
      notify();
      return true;
    },
    get version() {
      return version;
    },
    get cap() {
      return limit;
    },
    get size() {
      return records.size;
    },
    /** Events without a prompt id that could not be attributed unambiguously (dropped). */
    get unattributed() {
      return unattributed;
    },
    /** queue_remaining from the last `status` event (local server queue), or null. */
    get queueRemaining() {
      return queueRemaining;
    },
    /** The websocket session id (`sid`) from the last raw `status` message, or null. */
    get sessionId() {
      return sessionId;
    },
  };
  return store;
}

// ---------------------------------------------------------------------------------------------
// Selectors (pure functions of the store)
// ---------------------------------------------------------------------------------------------

function nodeFraction(node) {
  if (!node) return 0;
  if (isDone(node.state)) return 1;
  const max = Number(node.max) || 0;
  return max > 0 ? Math.min(1, Math.max(0, Number(node.value) / max)) : 0;
}

/**
 * Overall progress of one prompt: value = nodes done (running nodes count fractionally),
 * max = nodes known to run (node_ids from parallel.queued when given, else nodes seen so far).
 */
export function promptProgress(store, promptId) {
  const s = store.get(promptId);
  if (!s) return { value: 0, max: 0, fraction: 0 };
  const ids = new Set(Object.keys(s.nodes));
  if (s.node_ids) for (const id of s.node_ids) ids.add(id);
  let value = 0;
  for (const id of ids) value += nodeFraction(s.nodes[id]);
  const max = ids.size;
  let fraction = max > 0 ? value / max : 0;
  if (s.status === "success") fraction = 1;
  return { value, max, fraction };
}

/** Progress of one node of one prompt, or null when unknown. */
export function nodeProgress(store, promptId, nodeId) {
  const node = store.get(promptId)?.nodes[String(nodeId)];
  if (!node) return null;
  return { value: node.value, max: node.max, state: node.state, fraction: nodeFraction(node) };
}

/** Number of running prompts and their mean progress fraction (0 when none runs). */
export function aggregateProgress(store) {
  const running = store.all().filter((s) => s.status === "running");
  if (running.length === 0) return { running: 0, fraction: 0 };
  let sum = 0;
  for (const s of running) sum += promptProgress(store, s.prompt_id).fraction;
  return { running: running.length, fraction: sum / running.length };
}
