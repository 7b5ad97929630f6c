// Unit tests for web/state/selectors.js: the derived views the panel, title and hooks read.
import assert from "node:assert/strict";
import { test } from "node:test";

import { advance } from "../../web/state/records.js";
import { ensure } from "../../web/state/registry.js";
import {
  aggregateProgress,
  displayOrder,
  nodeProgress,
  promptProgress,
} from "../../web/state/selectors.js";
import { ev, registryWith, storeWith } from "./state_events.mjs";

test("displayOrder: running, then queued, then finished; newest first in each group", () => {
  const reg = registryWith();
  const statuses = { F1: "success", R1: "running", Q1: "queued", F2: "error", R2: "running" };
  for (const [id, status] of Object.entries(statuses)) advance(reg, ensure(reg, id), status);
  ensure(reg, "Q2");
  assert.deepEqual(
    displayOrder(reg.records.values()).map((s) => s.prompt_id),
    ["R2", "R1", "Q2", "Q1", "F2", "F1"],
  );
  assert.deepEqual(displayOrder([]), []);
});

test("promptProgress counts done nodes fully and running ones by their fraction", () => {
  const store = storeWith();
  store.dispatch(ev.queued("A", "wf-1", { node_ids: ["1", "2", "3", "4"] }));
  store.dispatch(ev.cached("A", ["1"]));
  store.dispatch(ev.state("A", { 2: [5, 10, "running"], 3: [0, 0, "running"] }));
  assert.deepEqual(promptProgress(store, "A"), { value: 1.5, max: 4, fraction: 0.375 });
  store.dispatch(ev.state("B", { 1: [7, 4, "running"], 2: [-1, 4, "running"] }));
  assert.deepEqual(promptProgress(store, "B"), { value: 1, max: 2, fraction: 0.5 }, "clamped 0..1");
  assert.deepEqual(promptProgress(store, "nope"), { value: 0, max: 0, fraction: 0 });
  store.dispatch(ev.success("A"));
  assert.deepEqual(promptProgress(store, "A"), { value: 1.5, max: 4, fraction: 1 }, "success is 1");
  store.dispatch(ev.queued("E", "wf"));
  assert.deepEqual(promptProgress(store, "E"), { value: 0, max: 0, fraction: 0 }, "no nodes yet");
});

test("nodeProgress: one node's numbers, by string or number id", () => {
  const store = storeWith();
  store.dispatch(ev.state("A", { 2: [5, 10, "running"], 1: [3, 3, "error"] }));
  const two = { value: 5, max: 10, state: "running", fraction: 0.5 };
  assert.deepEqual(nodeProgress(store, "A", "2"), two);
  assert.deepEqual(nodeProgress(store, "A", 1), { value: 3, max: 3, state: "error", fraction: 1 });
  assert.equal(nodeProgress(store, "A", "77"), null);
  assert.equal(nodeProgress(store, "nope", "1"), null);
});

test("selectors", () => {
  const store = storeWith();
  store.dispatch(ev.queued("A", "wf-1", { node_ids: ["1", "2", "3", "4"] }));
  store.dispatch(ev.start("A"));
  store.dispatch(ev.cached("A", ["1"]));
  store.dispatch(ev.executing("A", "2"));
  store.dispatch(ev.state("A", { 2: [5, 10, "running"] }));
  store.dispatch(ev.queued("B", "wf-2"));
  store.dispatch(ev.start("B"));
  store.dispatch(ev.state("B", { 1: [1, 1, "finished"], 2: [1, 4, "running"] }));
  store.dispatch(ev.queued("C", "wf-1"));

  assert.deepEqual(promptProgress(store, "A"), { value: 1.5, max: 4, fraction: 0.375 });
  assert.deepEqual(promptProgress(store, "B"), { value: 1.25, max: 2, fraction: 0.625 });
  assert.deepEqual(promptProgress(store, "nope"), { value: 0, max: 0, fraction: 0 });
  assert.deepEqual(nodeProgress(store, "A", "2"), {
    value: 5,
    max: 10,
    state: "running",
    fraction: 0.5,
  });
  assert.deepEqual(nodeProgress(store, "A", 1), {
    value: 1,
    max: 1,
    state: "finished",
    fraction: 1,
  });
  assert.equal(nodeProgress(store, "A", "77"), null);
  assert.deepEqual(aggregateProgress(store), { running: 2, fraction: (0.375 + 0.625) / 2 });

  store.dispatch(ev.success("A"));
  store.dispatch(ev.interrupted("B", "2"));
  assert.equal(promptProgress(store, "A").fraction, 1);
  assert.deepEqual(aggregateProgress(store), { running: 0, fraction: 0 });
  store.dispatch(ev.start("C"));
  assert.deepEqual(aggregateProgress(store), { running: 1, fraction: 0 });
});
