// Parallel Runs: derived views of the store that the panel, the title and the hooks read.
// Pure functions of the store (or of its records); nothing here changes state.

import { isDone } from "./nodes.js";

/** 0..1 for one node entry: done nodes count fully, running ones by value/max. */
function nodeFraction(node) {
  if (!node) return 0;
  if (isDone(node.state)) return 1;
  const max = Number(node.max) || 0;
  return max > 0 ? Math.min(1, Math.max(0, Number(node.value) / max)) : 0;
}

/** Running first, then queued, then finished; newest first within each group (store.all()). */
export function displayOrder(records) {
  const group = (s) => (s.status === "running" ? 0 : s.status === "queued" ? 1 : 2);
  return [...records]
    .sort((a, b) => group(a.s) - group(b.s) || b.seq - a.seq)
    .map((rec) => rec.s);
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

/**
 * Number of running prompts and their mean progress fraction (0 when none runs), over
 * `prompts` (default: every prompt held; the page passes the prompts its scope shows).
 */
export function aggregateProgress(store, prompts = store.all()) {
  const running = prompts.filter((s) => s.status === "running");
  if (running.length === 0) return { running: 0, fraction: 0 };
  let sum = 0;
  for (const s of running) sum += promptProgress(store, s.prompt_id).fraction;
  return { running: running.length, fraction: sum / running.length };
}
