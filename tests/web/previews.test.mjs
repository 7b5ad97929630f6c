// Unit tests for web/state/previews.js: the latest preview per prompt, and reporting the others.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PREVIEW_HANDLERS } from "../../web/state/previews.js";
import { advance } from "../../web/state/records.js";
import { ensure } from "../../web/state/registry.js";
import { ev, feed, registryWith, storeWith } from "./state_events.mjs";

/** A registry whose evicted previews are collected as [promptId, blob, reason]. */
function withEvictions() {
  const evicted = [];
  const reg = registryWith({
    now: () => 77,
    onPreviewEvicted: (preview, id, reason) => evicted.push([id, preview.blob_or_url, reason]),
  });
  return { reg, evicted };
}

test("a preview with metadata becomes the prompt's preview, whatever the frontend calls its id", () => {
  const { reg, evicted } = withEvictions();
  const data = { prompt_id: "C", node_id: 4, display_node_id: 40, parent_node_id: 1, url: "/v" };
  const results = feed(
    PREVIEW_HANDLERS,
    reg,
    ev.preview("A", "3", "a1"),
    ev.preview("B", "3", "b1", "jobId"),
    { type: "b_preview_with_metadata", data },
  );
  assert.deepEqual(results, [true, true, true]);
  assert.deepEqual(reg.records.get("A").s.preview, {
    node: "3",
    display_node: "3",
    parent_node: null,
    real_node: "3",
    blob_or_url: "a1",
    at: 77,
  });
  assert.equal(reg.records.get("A").s.status, "running", "a preview means the prompt runs");
  assert.equal(reg.records.get("B").s.preview.blob_or_url, "b1");
  const c = reg.records.get("C").s.preview;
  assert.deepEqual([c.node, c.display_node, c.parent_node, c.blob_or_url], ["4", "40", "1", "/v"]);
  assert.deepEqual(evicted, []);
});

test("a new preview replaces the old one, which is reported; the same one again is no change", () => {
  const { reg, evicted } = withEvictions();
  const results = feed(
    PREVIEW_HANDLERS,
    reg,
    ev.preview("A", "3", "a1"),
    ev.preview("A", "3", "a2"),
    ev.preview("A", "3", "a2"),
    ev.preview("A", "4", "a2"),
  );
  assert.deepEqual(results, [true, true, false, true]);
  assert.deepEqual(evicted, [
    ["A", "a1", "replaced"],
    ["A", "a2", "replaced"],
  ]);
  assert.equal(reg.records.get("A").s.preview.node, "4", "same image, another node: a new preview");
  assert.equal(reg.records.get("A").s.rev, 4, "running, a1, a2, a2 on node 4");
});

test("previews for finished or unknown owners are dropped and reported at once", () => {
  const { reg, evicted } = withEvictions();
  advance(reg, ensure(reg, "A"), "running");
  advance(reg, ensure(reg, "B"), "running");
  advance(reg, ensure(reg, "C"), "running");
  feed(PREVIEW_HANDLERS, reg, ev.preview("A", "3", "a1"));
  advance(reg, ensure(reg, "A"), "success");
  const late = feed(PREVIEW_HANDLERS, reg, ev.preview("A", "3", "late"));
  const noIds = { type: "b_preview_with_metadata", data: { blob: "x" } };
  const nobody = feed(PREVIEW_HANDLERS, reg, noIds);
  assert.deepEqual([late, nobody], [[false], [false]]);
  assert.equal(reg.records.get("A").s.preview.blob_or_url, "a1");
  assert.equal(reg.unattributed, 1, "B and C run: the id-less one has no owner");
  assert.deepEqual(evicted, [
    ["A", "late", "dropped"],
    [null, "x", "dropped"],
  ]);
});

test("a bare b_preview Blob goes to the single running prompt's current node only", () => {
  const { reg, evicted } = withEvictions();
  const bare = (data) => feed(PREVIEW_HANDLERS, reg, { type: "b_preview", data });
  assert.deepEqual(bare("none-running"), [false]);
  const rec = ensure(reg, "A");
  advance(reg, rec, "running");
  rec.s.current_node = "4";
  assert.deepEqual(bare("legacy-1"), [true]);
  assert.deepEqual(
    [rec.s.preview.node, rec.s.preview.display_node, rec.s.preview.blob_or_url],
    ["4", "4", "legacy-1"],
  );
  advance(reg, ensure(reg, "B"), "running");
  assert.deepEqual(bare({ blob: "two" }), [false]);
  assert.deepEqual(evicted, [
    [null, "none-running", "dropped"],
    [null, "two", "dropped"],
  ]);
  assert.equal(reg.unattributed, 2);
});

test("previews through the store: replaced, dropped and removed ones are all reported", () => {
  const evicted = [];
  const store = storeWith({
    onPreviewEvicted: (preview, id, reason) => evicted.push([id, preview.blob_or_url, reason]),
  });
  store.dispatch(ev.start("A"));
  store.dispatch(ev.start("B"));
  store.dispatch(ev.preview("A", "3", "a1"));
  store.dispatch(ev.preview("B", "3", "b1", "jobId")); // newest frontend names it jobId
  store.dispatch(ev.preview("A", "3", "a2"));
  store.dispatch(ev.preview("A", "3", "a2")); // duplicate: no eviction
  assert.equal(store.get("A").preview.blob_or_url, "a2");
  assert.equal(store.get("A").preview.node, "3");
  assert.equal(store.get("B").preview.blob_or_url, "b1");
  assert.deepEqual(evicted, [["A", "a1", "replaced"]]);

  // A legacy bare b_preview with two running prompts cannot be attributed.
  store.dispatch({ type: "b_preview", data: "legacy-1" });
  assert.deepEqual(evicted.at(-1), [null, "legacy-1", "dropped"]);
  store.dispatch(ev.success("B"));
  store.dispatch(ev.executing("A", "4"));
  store.dispatch({ type: "b_preview", data: "legacy-2" });
  assert.equal(store.get("A").preview.blob_or_url, "legacy-2");
  assert.equal(store.get("A").preview.node, "4");
  assert.deepEqual(evicted.at(-1), ["A", "a2", "replaced"]);

  // A preview arriving after the prompt finished is not kept, and reported for revoking.
  store.dispatch(ev.preview("B", "3", "b-late"));
  assert.equal(store.get("B").preview.blob_or_url, "b1");
  assert.deepEqual(evicted.at(-1), ["B", "b-late", "dropped"]);

  assert.equal(store.remove("A"), true);
  assert.deepEqual(evicted.at(-1), ["A", "legacy-2", "removed"]);
  assert.equal(store.get("A"), undefined);
});
