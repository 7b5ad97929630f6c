// Unit tests for web/state/records.js: a prompt's record and its status transitions.
import assert from "node:assert/strict";
import { test } from "node:test";

import { receiveMap } from "../../web/state/nodes.js";
import {
  advance,
  isStatus,
  isTerminal,
  markActive,
  newRecord,
  releasePreview,
  touch,
} from "../../web/state/records.js";
import { registryWith, stateMap } from "./state_events.mjs";

test("a new record's PromptState starts queued with every key, nodes read through the record", () => {
  const rec = newRecord("P", 3, 7);
  assert.equal(rec.seq, 3);
  assert.equal(rec.touched, 7);
  const s = rec.s;
  assert.deepEqual(Object.keys(s), [
    "prompt_id", "status", "executor", "client_id", "workflow_id", "number", "queued_at",
    "started_at", "finished_at", "nodes", "node_ids", "running_nodes", "current_node",
    "progress_text", "preview", "outputs", "error", "warning", "remote_status",
    "status_inferred", "rev",
  ]);
  assert.equal(s.prompt_id, "P");
  assert.equal(s.status, "queued");
  receiveMap(rec, stateMap("P", { 1: [1, 2, "running"] }));
  assert.equal(s.nodes["1"].value, 1, "reading nodes folds the pending map");
  assert.equal(rec.pending, null);
  assert.deepEqual(s.running_nodes, ["1"]);
});

test("isStatus and isTerminal", () => {
  assert.deepEqual(["queued", "running", "success", "done", undefined].map(isStatus), [
    true, true, true, false, false,
  ]);
  assert.deepEqual(["queued", "running", "success", "error", "interrupted"].map(isTerminal), [
    false, false, true, true, true,
  ]);
});

test("touch bumps rev and stamps the store's next version", () => {
  const reg = registryWith();
  const rec = newRecord("P", 1, 0);
  reg.version = 41;
  assert.equal(touch(reg, rec), true);
  assert.equal(rec.s.rev, 1);
  assert.equal(rec.touched, 42);
});

test("advance moves forward only; running stamps started_at, terminal stamps finished_at", () => {
  const reg = registryWith({ now: () => 500 });
  const rec = newRecord("P", 1, 0);
  assert.equal(advance(reg, rec, "running"), true);
  assert.equal(rec.s.started_at, 500);
  assert.equal(advance(reg, rec, "running", 900), false, "same status");
  assert.equal(advance(reg, rec, "queued"), false, "no going back");
  assert.equal(advance(reg, rec, "paused"), false, "unknown status");
  rec.s.current_node = "4";
  rec.running = ["4"];
  assert.equal(advance(reg, rec, "error", 800), true);
  assert.deepEqual([rec.s.status, rec.s.finished_at, rec.s.current_node], ["error", 800, null]);
  assert.deepEqual(rec.running, []);
  assert.deepEqual([...reg.finishedOrder], ["P"]);
  assert.equal(advance(reg, rec, "success"), false, "terminal is sticky");
  assert.equal(rec.s.rev, 2);
});

test("an inferred outcome yields to an explicit one, and finishing folds the pending map", () => {
  const reg = registryWith({ now: () => 500 });
  const other = newRecord("O", 1, 0);
  advance(reg, other, "success", 100);
  const rec = newRecord("P", 2, 0);
  advance(reg, rec, "running");
  receiveMap(rec, stateMap("P", { 1: [2, 2, "finished"] }));
  assert.equal(advance(reg, rec, "success", undefined, { inferred: true }), true);
  assert.equal(rec.pending, null, "folded before the prompt closed");
  assert.equal(rec.nodes["1"].state, "finished");
  assert.equal(rec.s.status_inferred, true);
  assert.equal(advance(reg, rec, "running"), false);
  assert.equal(advance(reg, rec, "error", undefined, { inferred: true }), false);
  assert.equal(advance(reg, rec, "success", 700), true, "explicit confirms: no longer inferred");
  const seen = [rec.s.status, rec.s.status_inferred, rec.s.finished_at];
  assert.deepEqual(seen, ["success", false, 500]);
  assert.equal(advance(reg, rec, "error"), false);
  assert.deepEqual([...reg.finishedOrder], ["O", "P"], "in the order they finished");
});

test("an explicit outcome replacing an inferred one is the newest finished", () => {
  const reg = registryWith();
  const a = newRecord("A", 1, 0);
  const b = newRecord("B", 2, 0);
  advance(reg, a, "success", 1, { inferred: true });
  advance(reg, b, "success", 2);
  advance(reg, a, "error", 3);
  assert.equal(a.s.status, "error");
  assert.equal(a.s.finished_at, 3);
  assert.deepEqual([...reg.finishedOrder], ["B", "A"]);
});

test("markActive starts a queued prompt and leaves running or finished ones alone", () => {
  const reg = registryWith();
  const rec = newRecord("P", 1, 0);
  assert.equal(markActive(reg, rec), true);
  assert.equal(rec.s.status, "running");
  assert.equal(markActive(reg, rec), false);
  advance(reg, rec, "interrupted");
  assert.equal(markActive(reg, rec), false);
  assert.equal(rec.s.status, "interrupted");
});

test("releasePreview reports a preview to the owner's hook, and nothing without one", () => {
  const seen = [];
  const reg = registryWith({ onPreviewEvicted: (...args) => seen.push(args) });
  releasePreview(reg, { blob_or_url: "x" }, "P", "replaced");
  releasePreview(reg, null, "P", "replaced");
  assert.deepEqual(seen, [[{ blob_or_url: "x" }, "P", "replaced"]]);
  releasePreview(registryWith(), { blob_or_url: "y" }, "P", "dropped"); // no hook: no throw
});
