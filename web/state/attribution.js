// Parallel Runs: which prompt an event belongs to. Most events carry a prompt id; the frontend's
// `api` re-dispatches some without one (bare `executing` node ids, stock `b_preview` Blobs,
// progress_text from older frontends). Those are attributed only when that is unambiguous
// (exactly one candidate prompt); otherwise they are counted in reg.unattributed and dropped.

import { ensure } from "./registry.js";
import { idOf } from "./values.js";

/** Records of the prompts running now (the only candidates for an event without an id). */
export function runningRecords(reg) {
  const out = [];
  for (const rec of reg.records.values()) if (rec.s.status === "running") out.push(rec);
  return out;
}

/** The prompt running `nodeId`, else the only running prompt; null when ambiguous. */
function attribute(reg, nodeId) {
  const running = runningRecords(reg);
  if (running.length === 1) return running[0];
  if (nodeId === null || running.length === 0) return null;
  const owners = running.filter(
    (rec) => rec.s.current_node === nodeId || rec.s.nodes[nodeId]?.state === "running",
  );
  return owners.length === 1 ? owners[0] : null;
}

/** The record an event is about: by its prompt id when it has one, else attributed by node. */
export function resolve(reg, promptId, nodeId) {
  const id = idOf(promptId);
  if (id !== null) return ensure(reg, id);
  const rec = attribute(reg, nodeId);
  if (!rec) reg.unattributed += 1;
  return rec;
}

/** Owner of an event that names neither prompt nor node: the single running prompt, or null. */
export function soleRunning(reg) {
  const running = runningRecords(reg);
  if (running.length === 1) return running[0];
  reg.unattributed += 1;
  return null;
}
