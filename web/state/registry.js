// Parallel Runs: which prompts the store holds. A map prompt_id -> record, the order prompts
// finished in (for the cap), and tombstones of recently dropped ids so that late events cannot
// bring them back. The store owns one registry; every other state module takes it as `reg`.

import { newRecord, releasePreview } from "./records.js";
import { idOf } from "./values.js";

/** How many pruned prompt ids are remembered so late events cannot resurrect them. */
const TOMBSTONE_FACTOR = 4;
const TOMBSTONE_MIN = 256;

/**
 * @typedef {object} Registry
 * @property {Map<string, object>} records prompt_id -> record (records.js newRecord)
 * @property {Set<string>} finishedOrder finished prompt ids in the order they finished
 * @property {Set<string>} tombstones recently pruned/removed ids; bounded FIFO
 * @property {number} limit how many finished prompts to keep
 * @property {number} version bumped once per change the store commits
 * @property {number} seq creation counter (newest prompt = highest seq)
 * @property {number} unattributed events without a prompt id that were dropped as ambiguous
 * @property {() => number} now clock (ms)
 * @property {Function | null} onPreviewEvicted told when a preview leaves the store
 */

/** An empty registry; `cap` is normalised like setCap() does. */
export function createRegistry({ cap = 50, now = () => Date.now(), onPreviewEvicted = null } = {}) {
  return {
    records: new Map(),
    finishedOrder: new Set(),
    tombstones: new Set(),
    limit: normaliseCap(cap),
    version: 0,
    seq: 0,
    unattributed: 0,
    now,
    onPreviewEvicted,
    // Events of one prompt come in bursts: the last lookup, cleared by forget().
    lastId: null,
    lastRec: null,
  };
}

/** The cap comes from a user setting: anything but a non-negative number means the default. */
export function normaliseCap(value) {
  const n = Math.floor(Number(value));
  return Number.isFinite(n) && n >= 0 ? n : 50;
}

/** Existing record, or a new one; null when the id is missing or was pruned recently. */
export function ensure(reg, promptId) {
  if (promptId === reg.lastId && reg.lastRec !== null) return reg.lastRec;
  const existing = reg.records.get(promptId);
  if (existing !== undefined) {
    reg.lastId = promptId;
    reg.lastRec = existing;
    return existing;
  }
  const id = idOf(promptId);
  if (id === null || reg.tombstones.has(id)) return null;
  let rec = reg.records.get(id);
  if (!rec) {
    rec = newRecord(id, ++reg.seq, reg.version);
    reg.records.set(id, rec);
  }
  return rec;
}

/** Drop a prompt and remember its id (bounded) so late events for it are ignored. */
export function forget(reg, id, reason) {
  const rec = reg.records.get(id);
  if (!rec) return;
  reg.records.delete(id);
  if (reg.lastRec === rec) {
    reg.lastId = null;
    reg.lastRec = null;
  }
  reg.finishedOrder.delete(id);
  releasePreview(reg, rec.s.preview, rec.s.prompt_id, reason);
  reg.tombstones.add(id);
  const tombCap = Math.max(TOMBSTONE_MIN, reg.limit * TOMBSTONE_FACTOR);
  while (reg.tombstones.size > tombCap) reg.tombstones.delete(reg.tombstones.values().next().value);
}

/** Drop the oldest finished prompts beyond the cap; running/queued prompts are never pruned. */
export function prune(reg) {
  let pruned = false;
  while (reg.finishedOrder.size > reg.limit) {
    forget(reg, reg.finishedOrder.values().next().value, "pruned");
    pruned = true;
  }
  return pruned;
}
