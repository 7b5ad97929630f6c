// Unit tests for web/state/prompt_state.js: the store that composes the state modules
// (run: node --test tests/web/). Each module has its own tests beside this file; these follow
// events through the whole store.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as api from "../../web/state/prompt_state.js";
import { createStore } from "../../web/state/prompt_state.js";
import { TERMINAL_STATUSES } from "../../web/state/records.js";
import * as selectors from "../../web/state/selectors.js";
import { ev, runPrompt, storeWith } from "./state_events.mjs";

test("interleaved events of several prompts stay separate", () => {
  const store = storeWith();
  store.dispatch(ev.queued("A", "wf-1"));
  store.dispatch(ev.queued("B", "wf-2"));
  store.dispatch(ev.queued("C", "wf-1"));
  store.dispatch(ev.start("A", 2_000));
  store.dispatch(ev.start("B", 2_100));
  store.dispatch(ev.executing("A", "5"));
  store.dispatch(ev.executing("B", "5"));
  store.dispatch(ev.progress("A", "5", 3, 10));
  store.dispatch(ev.progress("B", "5", 7, 10));
  store.dispatch(ev.state("A", { 5: [3, 10, "running"] }));
  store.dispatch(ev.executed("B", "5", { images: [{ filename: "b.png" }] }));
  store.dispatch(ev.success("B", 3_000));
  store.dispatch(ev.progress("A", "5", 4, 10));

  const a = store.get("A");
  const b = store.get("B");
  assert.equal(a.status, "running");
  assert.deepEqual(a.nodes["5"], {
    value: 4,
    max: 10,
    state: "running",
    display_node_id: "5",
    parent_node_id: null,
    real_node_id: "5",
    cached: false,
  });
  assert.equal(a.current_node, "5");
  assert.deepEqual(a.running_nodes, ["5"]);
  assert.deepEqual(a.outputs, {});
  assert.equal(a.started_at, 2_000);
  assert.equal(b.status, "success");
  assert.equal(b.started_at, 2_100);
  assert.equal(b.finished_at, 3_000);
  assert.deepEqual(b.outputs, { 5: { images: [{ filename: "b.png" }] } });
  assert.equal(b.nodes["5"].state, "finished");
  assert.deepEqual(b.running_nodes, []);
  assert.equal(store.get("C").status, "queued");
  assert.equal(store.get("C").workflow_id, "wf-1");
  assert.deepEqual(
    store.all().map((s) => s.prompt_id),
    ["A", "C", "B"],
    "running first, then queued, then finished",
  );
});

test("timings come from now() or the event timestamp", () => {
  let t = 100;
  const store = createStore({ now: () => t });
  store.dispatch(ev.queued("P", "wf"));
  t = 250;
  store.dispatch(ev.executing("P", "1"));
  t = 400;
  store.dispatch(ev.success("P"));
  assert.deepEqual(
    [store.get("P").queued_at, store.get("P").started_at, store.get("P").finished_at],
    [100, 250, 400],
  );
  store.dispatch(ev.start("Q", 1_700_000_000_123));
  assert.equal(store.get("Q").started_at, 1_700_000_000_123);
});

test("out-of-order: progress before execution_start creates a running entry", () => {
  const store = storeWith();
  store.dispatch(ev.progress("P", "3", 1, 4));
  const early = store.get("P");
  assert.equal(early.status, "running");
  assert.equal(early.nodes["3"].value, 1);
  assert.ok(early.started_at !== null);
  store.dispatch(ev.start("P", 5_000));
  assert.equal(store.get("P").status, "running");
  assert.equal(store.get("P").started_at, 5_000, "the server's timestamp wins");
  assert.equal(store.get("P").nodes["3"].value, 1, "start does not wipe earlier progress");
});

test("duplicate events are idempotent", () => {
  const events = [
    ev.queued("P", "wf"),
    ev.start("P", 1_000),
    ev.cached("P", ["1"]),
    ev.executing("P", "2"),
    ev.progress("P", "2", 1, 3),
    ev.state("P", { 2: [1, 3, "running"] }),
    ev.text("2", "step 1", "P"),
    ev.preview("P", "2", "blob-1"),
    ev.executed("P", "2", { images: [{ filename: "x.png" }] }),
    ev.success("P", 2_000),
    { type: "executing", data: { node: null, prompt_id: "P" } },
  ];
  const once = storeWith();
  const twice = storeWith();
  for (const event of events) {
    once.dispatch(event);
    twice.dispatch(event);
    const version = twice.version;
    const copy = structuredClone(event);
    assert.equal(twice.dispatch(copy), false, `duplicate ${event.type} changes nothing`);
    assert.equal(twice.version, version);
  }
  const strip = (s) => JSON.stringify({ ...s, preview: { ...s.preview, at: 0 } });
  assert.equal(strip(twice.get("P")), strip(once.get("P")));
  assert.equal(twice.get("P").status, "success");
  assert.deepEqual(twice.get("P").outputs, { 2: { images: [{ filename: "x.png" }] } });
});

test("unknown prompt ids: id-carrying events create entries; id-less ones only when unambiguous", () => {
  const store = storeWith();
  store.dispatch(ev.executed("ghost", "3", { text: ["hi"] }));
  assert.equal(store.get("ghost").outputs["3"].text[0], "hi");
  assert.equal(store.get("never-seen"), undefined);

  // The frontend's `api` delivers executing as a bare node id: attributed to the only runner.
  store.dispatch(ev.start("A"));
  // "ghost" is running too (it had activity), so make it finish first.
  store.dispatch(ev.success("ghost"));
  store.dispatch({ type: "executing", data: "12" });
  assert.equal(store.get("A").current_node, "12");
  assert.equal(store.unattributed, 0);

  store.dispatch(ev.start("B"));
  const before = store.version;
  assert.equal(store.dispatch({ type: "executing", data: "13" }), false, "two running: ambiguous");
  assert.equal(store.dispatch({ type: "progress", data: { value: 1, max: 2, node: "99" } }), false);
  assert.equal(store.version, before);
  assert.equal(store.unattributed, 2);
  assert.equal(store.get("A").current_node, "12");
  assert.equal(store.get("B").current_node, null);

  // A bare `executing null` with two running prompts must not finish either of them.
  store.dispatch({ type: "executing", data: null });
  assert.equal(store.get("A").status, "running");
  assert.equal(store.get("B").status, "running");
  // Events without any id and unknown types are ignored.
  assert.equal(store.dispatch({ type: "execution_success", data: {} }), false);
  assert.equal(store.dispatch({ type: "no_such_event", data: { prompt_id: "A" } }), false);
  assert.equal(store.dispatch(null), false);
});

test("cap prunes the oldest finished prompts; running prompts survive", () => {
  const evicted = [];
  const store = storeWith({
    cap: 2,
    onPreviewEvicted: (preview, id, reason) => evicted.push([id, preview.blob_or_url, reason]),
  });
  store.dispatch(ev.start("R1"));
  store.dispatch(ev.preview("R1", "1", "r1-blob"));
  store.dispatch(ev.queued("Q1", "wf"));
  for (const id of ["F1", "F2", "F3", "F4"]) {
    store.dispatch(ev.start(id));
    store.dispatch(ev.preview(id, "1", `${id}-blob`));
    store.dispatch(ev.success(id));
  }
  store.dispatch(ev.start("R2"));
  assert.deepEqual(
    store.all().map((s) => s.prompt_id),
    ["R2", "R1", "Q1", "F4", "F3"],
  );
  assert.deepEqual(evicted, [
    ["F1", "F1-blob", "pruned"],
    ["F2", "F2-blob", "pruned"],
  ]);
  // A pruned prompt is not resurrected by late events.
  assert.equal(store.dispatch(ev.executing("F1", "1")), false);
  assert.equal(store.get("F1"), undefined);

  // Finishing the long-running prompt makes it the newest finished; F3 goes.
  store.dispatch(ev.success("R1"));
  assert.deepEqual(
    store.all().map((s) => s.prompt_id),
    ["R2", "Q1", "F4", "R1"],
    "finished prompts are listed newest-queued first",
  );

  store.setCap(0);
  assert.deepEqual(
    store.all().map((s) => s.prompt_id),
    ["R2", "Q1"],
  );
  assert.deepEqual(
    evicted.map(([id]) => id),
    ["F1", "F2", "F3", "F4", "R1"],
  );
});

test("memory stays bounded: 1000 finished prompts with cap 10 keep 10 entries", () => {
  const store = storeWith({ cap: 10 });
  for (let i = 0; i < 1_000; i += 1) runPrompt(store, `p${i}`, { nodes: ["1"], steps: 1 });
  assert.equal(store.size, 10);
  assert.deepEqual(
    store.all().map((s) => s.prompt_id),
    Array.from({ length: 10 }, (_, k) => `p${999 - k}`),
  );
});

test("subscribe is told after each change; a throwing listener does not break dispatch", () => {
  const errors = [];
  const store = storeWith({ onListenerError: (error) => errors.push(error.message) });
  const seen = [];
  const unsubscribe = store.subscribe((s) => seen.push(s.version));
  store.subscribe(() => {
    throw new Error("listener bug");
  });
  store.dispatch(ev.start("A"));
  store.dispatch(ev.start("A")); // no change, no call
  store.dispatch(ev.progress("A", "1", 1, 2));
  unsubscribe();
  store.dispatch(ev.success("A"));
  assert.deepEqual(seen, [1, 2]);
  assert.equal(store.version, 3);
  assert.deepEqual(errors, ["listener bug", "listener bug", "listener bug"]);
});

test("stores are independent (no shared module state)", () => {
  const one = storeWith();
  const two = storeWith();
  one.dispatch(ev.start("A"));
  assert.equal(two.get("A"), undefined);
  assert.equal(two.version, 0);
});

test("setCap prunes at once and tells subscribers only when something went", () => {
  const store = storeWith({ cap: 5 });
  const seen = [];
  store.subscribe((s) => seen.push(s.size));
  for (const id of ["A", "B", "C"]) runPrompt(store, id, { nodes: ["1"], steps: 1 });
  store.dispatch(ev.start("R"));
  const calls = seen.length;
  store.setCap(3);
  assert.equal(seen.length, calls, "nothing beyond the new cap: no change");
  store.setCap("1");
  assert.deepEqual(store.all().map((s) => s.prompt_id), ["R", "C"]);
  assert.equal(seen.at(-1), 2);
  store.setCap("not a number"); // back to the default of 50: nothing to prune
  runPrompt(store, "D", { nodes: ["1"], steps: 1 });
  assert.equal(store.size, 3, "the default cap keeps C and D");
});

test("remove forgets a prompt for good and reports whether it was there", () => {
  const store = storeWith();
  const seen = [];
  store.subscribe((s) => seen.push(s.version));
  store.dispatch(ev.start(7));
  assert.equal(store.remove("8"), false);
  assert.equal(store.remove(7), true);
  assert.deepEqual(seen, [1, 2]);
  assert.equal(store.get("7"), undefined);
  assert.equal(store.dispatch(ev.progress("7", "1", 1, 2)), false, "late events are ignored");
  assert.equal(store.size, 0);
});

test("all() is a fresh copy each time, recomputed only after a change", () => {
  const store = storeWith();
  store.dispatch(ev.queued("Q", "wf"));
  const first = store.all();
  first.pop();
  assert.deepEqual(store.all().map((s) => s.prompt_id), ["Q"]);
  store.dispatch(ev.start("R"));
  assert.deepEqual(store.all().map((s) => s.prompt_id), ["R", "Q"]);
});

test("the store module keeps the API its importers use", () => {
  assert.deepEqual(Object.keys(api).sort(), [
    "TERMINAL_STATUSES",
    "aggregateProgress",
    "createStore",
    "nodeProgress",
    "promptProgress",
  ]);
  assert.equal(api.TERMINAL_STATUSES, TERMINAL_STATUSES);
  for (const name of ["aggregateProgress", "nodeProgress", "promptProgress"]) {
    assert.equal(api[name], selectors[name], name);
  }
  assert.equal(typeof createStore().dispatch, "function");
});
