// Unit tests for web/state/progress.js: ComfyUI's execution events folded into a prompt's record.
import assert from "node:assert/strict";
import { test } from "node:test";

import { nodeProgress } from "../../web/state/prompt_state.js";
import { PROGRESS_HANDLERS } from "../../web/state/progress.js";
import { advance } from "../../web/state/records.js";
import { ensure } from "../../web/state/registry.js";
import { ev, feed, registryWith, runPrompt, storeWith } from "./state_events.mjs";

const fold = (reg, ...events) => feed(PROGRESS_HANDLERS, reg, ...events);

test("execution_start: running, at the server's time when it gives one", () => {
  const reg = registryWith({ now: () => 300 });
  assert.deepEqual(fold(reg, ev.progress("P", "3", 1, 4)), [true]);
  assert.equal(reg.records.get("P").s.started_at, 300, "activity before the start: now()");
  assert.deepEqual(fold(reg, ev.start("P", 5_000), ev.start("P", 5_000)), [true, false]);
  const s = reg.records.get("P").s;
  assert.deepEqual([s.status, s.started_at, s.nodes["3"].value], ["running", 5_000, 1]);
  fold(reg, ev.start("Q"));
  assert.equal(reg.records.get("Q").s.started_at, 300);
});

test("executing: the current node runs; without progress_state the previous one is finished", () => {
  const reg = registryWith();
  fold(reg, ev.executing("P", "1"), ev.executing("P", "2"));
  const s = reg.records.get("P").s;
  assert.deepEqual([s.status, s.current_node], ["running", "2"]);
  assert.deepEqual([s.nodes["1"].state, s.nodes["2"].state], ["finished", "running"]);
  assert.deepEqual(s.running_nodes, ["2"]);
  assert.deepEqual(fold(reg, ev.executing("P", "2")), [false], "same node again");
  fold(reg, { type: "executing", data: { node: "3", display_node: "30", prompt_id: "P" } });
  assert.equal(s.nodes["3"].display_node_id, "30");

  // With progress_state the server says when a node ends; `executing` does not guess it.
  fold(reg, ev.state("Q", { 1: [0, 1, "running"] }));
  fold(reg, ev.executing("Q", "1"), ev.executing("Q", "2"));
  assert.equal(reg.records.get("Q").s.nodes["1"].state, "running");
});

test("executing null infers success; a bare node id goes to the only running prompt", () => {
  const reg = registryWith();
  fold(reg, ev.start("P"), { type: "executing", data: "12" });
  assert.equal(reg.records.get("P").s.current_node, "12");
  assert.deepEqual(fold(reg, { type: "executing", data: { node: null, prompt_id: "P" } }), [true]);
  const s = reg.records.get("P").s;
  assert.deepEqual([s.status, s.status_inferred, s.current_node], ["success", true, null]);
  assert.deepEqual(fold(reg, { type: "executing", data: { node: null, prompt_id: "P" } }), [false]);
});

test("progress: numbers per node; nothing after the prompt finished or without a node", () => {
  const reg = registryWith();
  const step = ev.progress("P", "2", 1, 4);
  assert.deepEqual(fold(reg, step, step), [true, false]);
  assert.deepEqual(fold(reg, ev.progress("P", "2", 2, 4)), [true]);
  const noNode = { type: "progress", data: { prompt_id: "P", value: 1, max: 2 } };
  assert.deepEqual(fold(reg, noNode), [false]);
  advance(reg, ensure(reg, "P"), "success");
  assert.deepEqual(fold(reg, ev.progress("P", "2", 3, 4)), [false]);
  assert.equal(reg.records.get("P").s.nodes["2"].value, 2);
});

test("progress_state: kept by reference, folded when read, ignored once finished", () => {
  const reg = registryWith();
  const first = ev.state("P", { 1: [1, 3, "running"] });
  assert.deepEqual(fold(reg, first, first), [true, false]);
  const rec = reg.records.get("P");
  assert.equal(rec.pending, first.data.nodes);
  assert.equal(rec.s.rev, 2, "running + the map");
  assert.equal(rec.s.nodes["1"].value, 1);
  assert.equal(rec.s.rev, 2, "reading does not count as a change");
  const noMap = { type: "progress_state", data: { prompt_id: "P", nodes: null } };
  assert.deepEqual(fold(reg, noMap), [false]);
  advance(reg, rec, "success");
  assert.deepEqual(fold(reg, ev.state("P", { 1: [0, 3, "running"] })), [false]);
  assert.equal(rec.s.nodes["1"].state, "running", "the last map before the end stays folded");
});

test("executed: stores the output, finishes the node, merges with merge: true", () => {
  const reg = registryWith();
  fold(reg, ev.executing("P", "9"), ev.executed("P", "9", { images: [{ filename: "a.png" }] }));
  const s = reg.records.get("P").s;
  assert.equal(s.nodes["9"].state, "finished");
  assert.deepEqual(s.running_nodes, ["9"], "still the current node until the next executing");
  const more = { node: "9", prompt_id: "P", merge: true, output: { images: [{ filename: "b" }] } };
  assert.deepEqual(fold(reg, { type: "executed", data: more }), [true]);
  assert.deepEqual(s.outputs["9"].images.map((i) => i.filename), ["a.png", "b"]);
  assert.deepEqual(fold(reg, ev.executed("P", "9", s.outputs["9"])), [false], "same output");
});

test("execution_cached: cached nodes count as finished without running", () => {
  const reg = registryWith();
  fold(reg, ev.executing("P", "2"));
  assert.deepEqual(fold(reg, ev.cached("P", [1, "2", null]), ev.cached("P", ["1"])), [true, false]);
  const s = reg.records.get("P").s;
  assert.deepEqual(s.nodes["1"], { ...s.nodes["1"], state: "finished", value: 1, cached: true });
  assert.equal(s.nodes["2"].state, "running", "a node already seen is left as it is");
});

test("progress_text: filed under the node, with or without a prompt id", () => {
  const reg = registryWith();
  fold(reg, ev.executing("A", "5"));
  const parallel = { prompt_id: "A", node: "5", display_node: "50", text: "scoped" };
  assert.deepEqual(
    fold(reg, ev.text("5", "hi", "A"), ev.text("6", 42), {
      type: "parallel.progress_text",
      data: parallel,
    }),
    [true, true, true],
  );
  const s = reg.records.get("A").s;
  assert.deepEqual(s.progress_text, { 5: "scoped", 6: "42" });
  assert.equal(s.nodes["5"].display_node_id, "50");
  assert.deepEqual(fold(reg, ev.text("6", "42")), [false], "same text");
  assert.deepEqual(fold(reg, { type: "progress_text", data: { text: "no node" } }), [false]);
  fold(reg, ev.text("5", null, "A"));
  assert.equal(s.progress_text["5"], "");
});

// ---- through the store --------------------------------------------------------------------------

test("out-of-order: late executing/progress after success never reopen a prompt", () => {
  const store = storeWith();
  runPrompt(store, "P");
  const before = JSON.stringify(store.get("P"));
  const version = store.version;
  assert.equal(store.dispatch(ev.executing("P", "2")), false);
  assert.equal(store.dispatch(ev.progress("P", "2", 1, 2)), false);
  assert.equal(store.dispatch(ev.state("P", { 2: [1, 2, "running"] })), false);
  assert.equal(store.dispatch(ev.start("P")), false);
  assert.equal(store.dispatch(ev.job({ prompt_id: "P", status: "running" })), false);
  assert.equal(store.get("P").status, "success");
  assert.equal(JSON.stringify(store.get("P")), before);
  assert.equal(store.version, version);
});

test("progress_text with and without a prompt id", () => {
  const store = storeWith();
  store.dispatch(ev.start("A"));
  store.dispatch(ev.executing("A", "5"));
  // Newest frontend: prompt id decoded from the frame.
  store.dispatch(ev.text("5", "A says hi", "A"));
  // Older frontend, one running prompt: attributed to it.
  store.dispatch(ev.text("6", "only runner"));
  assert.deepEqual(store.get("A").progress_text, { 5: "A says hi", 6: "only runner" });

  store.dispatch(ev.start("B"));
  store.dispatch(ev.executing("B", "8"));
  // Two running prompts: the one running node 8 owns the text.
  store.dispatch(ev.text("8", "B's node"));
  assert.equal(store.get("B").progress_text["8"], "B's node");
  assert.equal(store.get("A").progress_text["8"], undefined);
  // Both run node 5 now: ambiguous, dropped rather than guessed.
  store.dispatch(ev.executing("B", "5"));
  const before = store.version;
  assert.equal(store.dispatch(ev.text("5", "whose?")), false);
  assert.equal(store.version, before);
  assert.equal(store.get("A").progress_text["5"], "A says hi");
  assert.equal(store.get("B").progress_text["5"], undefined);
  assert.equal(store.unattributed, 1);
  // A node nobody runs while two prompts run: dropped too.
  assert.equal(store.dispatch(ev.text("42", "nobody")), false);
  assert.equal(store.unattributed, 2);

  // The package's own event always carries the prompt id.
  store.dispatch({
    type: "parallel.progress_text",
    data: { prompt_id: "B", node: "5", display_node: "5", text: "scoped" },
  });
  assert.equal(store.get("B").progress_text["5"], "scoped");
  assert.equal(store.get("A").progress_text["5"], "A says hi");
});

test("lazy progress_state: out-of-order maps read back without done nodes reopening", () => {
  const store = storeWith();
  store.dispatch(ev.start("P"));
  store.dispatch(ev.executing("P", "1"));
  store.dispatch(ev.state("P", { 1: [1, 4, "running"] }));
  // Newer map (node 1 done, node 2 started), then an older one arrives late; nothing read between.
  store.dispatch(ev.state("P", { 1: [4, 4, "finished"], 2: [0, 3, "running"] }));
  store.dispatch(ev.state("P", { 1: [2, 4, "running"] }));
  const s = store.get("P");
  assert.equal(s.nodes["1"].state, "finished", "a late running entry does not reopen node 1");
  assert.equal(s.nodes["2"].state, "running", "node 2 from the superseded map is kept");
  assert.ok(s.running_nodes.includes("2"));
  // Same sequence read after every message gives the same node states.
  const eager = storeWith();
  eager.dispatch(ev.start("P"));
  eager.dispatch(ev.executing("P", "1"));
  for (const map of [
    { 1: [1, 4, "running"] },
    { 1: [4, 4, "finished"], 2: [0, 3, "running"] },
    { 1: [2, 4, "running"] },
  ]) {
    eager.dispatch(ev.state("P", map));
    assert.ok(eager.get("P").nodes);
  }
  const states = (x) => Object.fromEntries(Object.entries(x.nodes).map(([k, n]) => [k, n.state]));
  assert.deepEqual(states(s), states(eager.get("P")));
  assert.deepEqual(s.running_nodes, eager.get("P").running_nodes);
});

test("lazy progress_state: a later progress event wins over the pending map's numbers", () => {
  const store = storeWith();
  store.dispatch(ev.start("P"));
  store.dispatch(ev.executing("P", "3"));
  store.dispatch(ev.state("P", { 3: [2, 10, "running"] }));
  store.dispatch(ev.progress("P", "3", 5, 10));
  assert.deepEqual(nodeProgress(store, "P", "3"), {
    value: 5,
    max: 10,
    state: "running",
    fraction: 0.5,
  });
  store.dispatch(ev.state("P", { 3: [6, 10, "running"] }));
  assert.equal(store.get("P").nodes["3"].value, 6, "a newer map wins again");
});

test("lazy progress_state: version and rev move on arrival, not on read; copies are duplicates", () => {
  const store = storeWith();
  store.dispatch(ev.start("P"));
  const map = ev.state("P", { 1: [1, 3, "running"], 2: [0, 3, "running"] });
  assert.equal(store.dispatch(map), true);
  const { version } = store;
  const { rev } = store.get("P");
  assert.equal(store.dispatch(map), false, "same object again");
  assert.equal(store.dispatch(structuredClone(map)), false, "equal copy");
  const reordered = ev.state("P", { 2: [0, 3, "running"], 1: [1, 3, "running"] });
  assert.equal(store.dispatch(reordered), false, "same entries in another order");
  assert.equal(store.version, version);
  assert.equal(store.get("P").nodes["1"].value, 1);
  assert.equal(store.version, version, "reading folds without bumping version");
  assert.equal(store.get("P").rev, rev);
  const next = ev.state("P", { 1: [2, 3, "running"], 2: [0, 3, "running"] });
  assert.equal(store.dispatch(next), true);
  assert.equal(store.get("P").rev, rev + 1);
  assert.equal(store.dispatch(ev.state("P", { 1: [2, 3, "running"] })), true, "entry dropped");
  assert.equal(store.get("P").nodes["2"].state, "running", "known nodes are never dropped");
});

test("lazy progress_state: finishing folds the pending map; PromptState keeps its keys", () => {
  const store = storeWith();
  const seen = [];
  store.subscribe((st) => seen.push(st.version));
  store.dispatch(ev.start("P"));
  store.dispatch(ev.executing("P", "1"));
  store.dispatch(ev.state("P", { 1: [3, 3, "finished"], 2: [1, 2, "running"] }));
  store.dispatch(ev.success("P"));
  const s = store.get("P");
  assert.equal(s.nodes["1"].state, "finished");
  assert.equal(s.nodes["2"].value, 1);
  assert.deepEqual(s.running_nodes, []);
  assert.equal(store.dispatch(ev.state("P", { 1: [0, 3, "running"] })), false);
  assert.equal(s.nodes["1"].state, "finished");
  const copy = JSON.parse(JSON.stringify(s));
  assert.deepEqual(Object.keys(copy), Object.keys(s));
  assert.deepEqual(copy.nodes["2"], { ...s.nodes["2"] });
  assert.deepEqual(copy.running_nodes, []);
  assert.equal(seen.length, store.version);
});
