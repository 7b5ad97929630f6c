// Unit tests for web/state/registry.js: which prompts the store holds, the cap and tombstones.
import assert from "node:assert/strict";
import { test } from "node:test";

import { advance } from "../../web/state/records.js";
import { ensure, forget, normaliseCap, prune } from "../../web/state/registry.js";
import { registryWith } from "./state_events.mjs";

/** A prompt that finished, in finishing order. */
function finished(reg, id) {
  const rec = ensure(reg, id);
  advance(reg, rec, "success");
  return rec;
}

test("ensure creates one record per id, numbers and strings alike, newest with the highest seq", () => {
  const reg = registryWith();
  reg.version = 5;
  const a = ensure(reg, 12);
  assert.equal(a.s.prompt_id, "12");
  assert.equal(ensure(reg, "12"), a);
  assert.equal(ensure(reg, 12), a);
  const b = ensure(reg, "B");
  assert.ok(b.seq > a.seq);
  assert.equal(b.touched, 5);
  assert.deepEqual([...reg.records.keys()], ["12", "B"]);
  assert.equal(ensure(reg, null), null);
  assert.equal(ensure(reg, undefined), null);
});

test("forget reports the preview, and late events for that id create nothing", () => {
  const evicted = [];
  const onPreviewEvicted = (p, id, why) => evicted.push([p.blob_or_url, id, why]);
  const reg = registryWith({ onPreviewEvicted });
  const rec = ensure(reg, "P");
  assert.equal(ensure(reg, "P"), rec, "a repeated lookup is served from the last-lookup cache");
  rec.s.preview = { blob_or_url: "blob-1" };
  forget(reg, "P", "removed");
  forget(reg, "P", "removed"); // twice: nothing more
  assert.deepEqual(evicted, [["blob-1", "P", "removed"]]);
  assert.equal(reg.records.size, 0);
  assert.equal(ensure(reg, "P"), null, "the cached last lookup was cleared too");
});

test("tombstones are bounded: the oldest ids may come back", () => {
  const reg = registryWith({ cap: 0 });
  for (let i = 0; i < 257; i += 1) {
    ensure(reg, `p${i}`);
    forget(reg, `p${i}`, "removed");
  }
  assert.equal(reg.tombstones.size, 256, "at least 256, else 4 x cap");
  assert.ok(ensure(reg, "p0"), "the oldest tombstone went");
  assert.equal(ensure(reg, "p1"), null);

  const big = registryWith({ cap: 100 });
  for (let i = 0; i < 500; i += 1) forget(big, ensure(big, `p${i}`).s.prompt_id, "pruned");
  assert.equal(big.tombstones.size, 400);
});

test("prune drops the oldest finished prompts beyond the cap, never running ones", () => {
  const evicted = [];
  const reg = registryWith({ cap: 2, onPreviewEvicted: (p, id, why) => evicted.push([id, why]) });
  advance(reg, ensure(reg, "R"), "running");
  ensure(reg, "Q");
  for (const id of ["F1", "F2", "F3"]) finished(reg, id).s.preview = { blob_or_url: id };
  assert.equal(prune(reg), true);
  assert.deepEqual([...reg.records.keys()], ["R", "Q", "F2", "F3"]);
  assert.deepEqual(evicted, [["F1", "pruned"]]);
  assert.equal(prune(reg), false, "nothing beyond the cap");
  reg.limit = 0;
  prune(reg);
  assert.deepEqual([...reg.records.keys()], ["R", "Q"]);
});

test("normaliseCap: non-negative whole numbers, else the default 50", () => {
  assert.deepEqual(
    [10, 0, 2.9, "7", -1, "lots", Number.NaN, undefined, null].map(normaliseCap),
    [10, 0, 2, 7, 50, 50, 50, 50, 0],
  );
  assert.equal(registryWith({ cap: "3" }).limit, 3);
});
