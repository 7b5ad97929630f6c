// Unit tests for web/state/nodes.js: one prompt's node table and the lazy progress_state fold.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  applyProgress,
  fold,
  isDone,
  receiveMap,
  refreshRunningNodes,
  setNode,
} from "../../web/state/nodes.js";
import { newRecord } from "../../web/state/records.js";
import { stateMap } from "./state_events.mjs";

const record = () => newRecord("P", 1, 0);
const map = (nodes) => stateMap("P", nodes);

test("isDone: finished and error nodes are done", () => {
  assert.deepEqual(
    ["finished", "error", "running", "pending", undefined].map(isDone),
    [true, true, false, false, false],
  );
});

test("setNode says what changed: 2 created/state, 1 values, 0 nothing; done nodes stay done", () => {
  const rec = record();
  assert.equal(setNode(rec, "1", { state: "running" }), 2);
  assert.deepEqual(rec.ids, ["1"]);
  assert.equal(setNode(rec, "1", { state: "running" }), 0);
  assert.equal(setNode(rec, "1", { value: 3, max: 8 }), 1);
  assert.equal(setNode(rec, "1", { value: 3, max: 8 }), 0);
  assert.equal(setNode(rec, "1", { display_node_id: "10" }), 1);
  assert.equal(setNode(rec, "1", { state: "finished" }), 2);
  assert.equal(setNode(rec, "1", { state: "running" }), 0, "finished does not reopen");
  assert.equal(rec.nodes["1"].state, "finished");
  assert.deepEqual([rec.nodes["1"].value, rec.nodes["1"].max], [3, 8]);
  assert.equal(setNode(rec, "2", { value: "2", max: 0 }), 2);
  assert.deepEqual([rec.nodes["2"].value, rec.nodes["2"].max], [2, 1], "wire numbers normalised");
});

test("refreshRunningNodes replaces the array only when the running set changes", () => {
  const rec = record();
  setNode(rec, "1", { state: "running" });
  setNode(rec, "2", { state: "finished" });
  assert.equal(refreshRunningNodes(rec), true);
  const running = rec.running;
  assert.deepEqual(running, ["1"]);
  assert.equal(refreshRunningNodes(rec), false);
  assert.equal(rec.running, running, "same array when nothing changed");
  rec.s.current_node = "9"; // executing before any node entry exists
  assert.equal(refreshRunningNodes(rec), true);
  assert.deepEqual(rec.running, ["1", "9"]);
  assert.deepEqual(running, ["1"], "the old array was not mutated");
});

test("applyProgress creates a running node, and its numbers beat a pending map", () => {
  const rec = record();
  assert.equal(applyProgress(rec, "3", 1, 4), true);
  assert.deepEqual(rec.running, ["3"]);
  assert.equal(applyProgress(rec, "3", 1, 4), false, "same numbers");
  receiveMap(rec, map({ 3: [2, 4, "running"] }));
  assert.equal(applyProgress(rec, "3", 3, 4), true);
  fold(rec);
  assert.equal(rec.nodes["3"].value, 3, "the older map does not overwrite newer progress");
  receiveMap(rec, map({ 3: [4, 4, "running"] }));
  fold(rec);
  assert.equal(rec.nodes["3"].value, 4, "a newer map wins again");
});

test("receiveMap keeps the map by reference; repeats of it are no change", () => {
  const rec = record();
  const first = map({ 1: [1, 3, "running"], 2: [0, 3, "running"] });
  assert.equal(receiveMap(rec, first), true);
  assert.equal(rec.pending, first, "not walked on arrival");
  assert.deepEqual(rec.nodes, {});
  assert.equal(receiveMap(rec, first), false, "same object");
  assert.equal(receiveMap(rec, structuredClone(first)), false, "equal copy");
  assert.equal(receiveMap(rec, map({ 2: [0, 3, "running"], 1: [1, 3, "running"] })), false);
  assert.equal(receiveMap(rec, map({ 1: [2, 3, "running"], 2: [0, 3, "running"] })), true);
  assert.deepEqual(rec.nodes, {}, "a newer map that keeps every node supersedes unfolded");
});

test("receiveMap folds the pending map first when the next one would lose or reopen a node", () => {
  const rec = record();
  fold(rec); // nothing pending: no-op
  setNode(rec, "1", { state: "running" });
  receiveMap(rec, map({ 1: [4, 4, "finished"], 2: [0, 3, "running"] }));
  receiveMap(rec, map({ 1: [2, 4, "running"] })); // older message, arriving late
  assert.equal(rec.nodes["1"].state, "finished", "folded before being replaced");
  assert.ok(rec.nodes["2"], "node 2 of the superseded map is kept");
  fold(rec);
  assert.equal(rec.nodes["1"].state, "finished", "the late map cannot reopen it");
  assert.deepEqual(rec.running, ["2"]);
});

test("fold keys nodes by node_id and copies subgraph ids", () => {
  const rec = record();
  receiveMap(rec, {
    a: { value: 1, max: 2, state: "running", node_id: 7, display_node_id: 5, parent_node_id: 4 },
    b: null,
  });
  fold(rec);
  assert.deepEqual(Object.keys(rec.nodes), ["7"]);
  assert.deepEqual(rec.nodes["7"], {
    value: 1,
    max: 2,
    state: "running",
    display_node_id: "5",
    parent_node_id: "4",
    real_node_id: null,
    cached: false,
  });
  assert.equal(rec.pending, null);
});

test("receiveMap folds a pending map whose numbers the next one lacks", () => {
  const rec = record();
  setNode(rec, "1", { state: "running" });
  setNode(rec, "2", { state: "running" });
  receiveMap(rec, map({ 1: [1, 4, "running"], 2: [3, 4, "running"] }));
  receiveMap(rec, map({ 1: [2, 4, "running"] })); // node 2 missing: an older message
  fold(rec);
  assert.deepEqual([rec.nodes["1"].value, rec.nodes["2"].value], [2, 3]);
});

test("receiveMap remembers which entry differed, to compare the next map by it first", () => {
  const rec = record();
  receiveMap(rec, map({ 1: [1, 4, "finished"], 2: [0, 4, "running"] }));
  receiveMap(rec, map({ 1: [1, 4, "finished"], 2: [1, 4, "running"] }));
  assert.equal(rec.hotKey, "2");
});
