// Parallel Runs: one prompt's node table, and the lazy fold of progress_state maps into it.
//
// progress_state is the hot path: ComfyUI sends the prompt's FULL node map with every step, and
// walking a JSON object costs ~10x a single property read. So the latest map is kept by reference
// (O(1) per message) and folded into `nodes` lazily, when `nodes`/`running_nodes` are read. The
// fold keeps the guarantees of an eager merge: finished/error nodes stay done, `progress` values
// newer than the pending map win, and a pending map is folded at once (not dropped) when the next
// one would lose a known node or turn a known done node back to running (out-of-order messages).
//
// Everything here works on one internal record (records.js newRecord) and nothing else.

/** Finished and error nodes are done: they never go back to running or pending. */
export function isDone(nodeState) {
  return nodeState === "finished" || nodeState === "error";
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

/** Set value/max from wire numbers (strings, missing max); true when they changed. */
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

/** New node entry, also listed in rec.ids (walked instead of the JSON map, no allocation). */
export function addNode(rec, nodeId, state) {
  const node = newNode(state);
  rec.nodes[nodeId] = node;
  rec.ids.push(nodeId);
  return node;
}

/** Update one node; returns 0 (no change), 1 (values changed) or 2 (created / state changed). */
export function setNode(rec, nodeId, { value, max, state, display_node_id: display } = {}) {
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

/**
 * The numbers of a `progress` event; true when the table changed. They are newer than any
 * pending progress_state map, so the node is stamped for the fold not to overwrite them.
 */
export function applyProgress(rec, nodeId, value, max) {
  if (rec.pending !== null) rec.valueTick[nodeId] = rec.tick;
  const node = rec.nodes[nodeId];
  if (node === undefined) {
    updateValues(addNode(rec, nodeId, "running"), value, max);
    refreshRunningNodes(rec);
    return true;
  }
  return updateValues(node, value, max);
}

/** Recompute running_nodes; the array is replaced (never mutated) when it changes. */
export function refreshRunningNodes(rec) {
  const current = rec.s.current_node;
  const nodes = rec.nodes;
  const previous = rec.running;
  let count = 0;
  let same = true;
  let currentMissing = current !== null;
  for (const nodeId in nodes) {
    if (nodes[nodeId].state !== "running") continue;
    if (previous[count] !== nodeId) same = false;
    if (nodeId === current) currentMissing = false;
    count += 1;
  }
  if (currentMissing && previous[count++] !== current) same = false;
  if (same && count === previous.length) return false;
  const running = [];
  for (const nodeId in nodes) if (nodes[nodeId].state === "running") running.push(nodeId);
  if (current !== null && !running.includes(current)) running.push(current);
  rec.running = running;
  return true;
}

/**
 * Take a new progress_state map by reference (folded later, when read); false when it repeats
 * the last one. The pending map is folded first if `next` cannot stand in for it.
 */
export function receiveMap(rec, next) {
  const previous = rec.last;
  if (previous === next) return false;
  if (previous !== null) {
    // Cheap check first: the executing node's entry is what changes from step to step.
    const hot = rec.s.current_node ?? rec.hotKey;
    const quick = hot === null || sameEntry(previous[hot], next[hot]);
    if (quick && sameMap(rec, previous, next)) return false;
  }
  const pending = rec.pending;
  if (pending !== null && !supersedes(rec, pending, next)) fold(rec);
  rec.tick += 1;
  rec.pending = next;
  rec.pendingTick = rec.tick;
  rec.last = next;
  return true;
}

/** Merge the pending progress_state map into the node table (done states stay done). */
export function fold(rec) {
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
      incoming.node_id === undefined || incoming.node_id === null ? key : String(incoming.node_id);
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

/** Field-by-field equality of two progress_state entries (JSON.stringify is far slower). */
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
