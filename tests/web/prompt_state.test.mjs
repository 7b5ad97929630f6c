// Unit tests for web/state/prompt_state.js (run: node --test tests/web/).
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  aggregateProgress,
  createStore,
  nodeProgress,
  promptProgress,
} from "../../web/state/prompt_state.js";

/** A controllable clock: every call advances by 10 ms so timings are distinguishable. */
function clock(start = 1_000) {
  let t = start;
  return () => (t += 10);
}

function storeWith(options = {}) {
  return createStore({ now: clock(), ...options });
}

/** Event builders with ComfyUI's wire shapes (server.py / execution.py / progress.py). */
const ev = {
  start: (prompt_id, timestamp) => ({ type: "execution_start", data: { prompt_id, timestamp } }),
  cached: (prompt_id, nodes) => ({ type: "execution_cached", data: { prompt_id, nodes } }),
  executing: (prompt_id, node) => ({
    type: "executing",
    data: { node, display_node: node, prompt_id },
  }),
  progress: (prompt_id, node, value, max) => ({
    type: "progress",
    data: { value, max, prompt_id, node },
  }),
  state: (prompt_id, nodes) => ({
    type: "progress_state",
    data: {
      prompt_id,
      nodes: Object.fromEntries(
        Object.entries(nodes).map(([id, [value, max, state]]) => [
          id,
          {
            value,
            max,
            state,
            node_id: id,
            prompt_id,
            display_node_id: id,
            parent_node_id: null,
            real_node_id: id,
          },
        ]),
      ),
    },
  }),
  executed: (prompt_id, node, output) => ({
    type: "executed",
    data: { node, display_node: node, output, prompt_id },
  }),
  success: (prompt_id, timestamp) => ({
    type: "execution_success",
    data: { prompt_id, timestamp },
  }),
  error: (prompt_id, node_id, message) => ({
    type: "execution_error",
    data: {
      prompt_id,
      node_id,
      node_type: "SlowPassthrough",
      executed: [],
      exception_message: message,
      exception_type: "RuntimeError",
      traceback: ["line 1"],
      current_inputs: {},
      current_outputs: [],
      timestamp: 9_000,
    },
  }),
  interrupted: (prompt_id, node_id) => ({
    type: "execution_interrupted",
    data: { prompt_id, node_id, node_type: "SlowPassthrough", executed: [], timestamp: 9_500 },
  }),
  text: (nodeId, text, prompt_id) => ({
    type: "progress_text",
    data: prompt_id === undefined ? { nodeId, text } : { nodeId, text, prompt_id },
  }),
  preview: (promptId, nodeId, blob, key = "promptId") => ({
    type: "b_preview_with_metadata",
    data: {
      blob,
      nodeId,
      displayNodeId: nodeId,
      parentNodeId: null,
      realNodeId: nodeId,
      [key]: promptId,
    },
  }),
  queued: (prompt_id, workflow_id, extra = {}) => ({
    type: "parallel.queued",
    data: { prompt_id, workflow_id, client_id: "c1", executor: "local", ...extra },
  }),
};

function runPrompt(store, id, { nodes = ["1", "2"], steps = 2, outcome = "success" } = {}) {
  store.dispatch(ev.start(id));
  for (const node of nodes) {
    store.dispatch(ev.executing(id, node));
    for (let step = 1; step <= steps; step += 1) store.dispatch(ev.progress(id, node, step, steps));
    store.dispatch(ev.executed(id, node, { text: [`${id}:${node}`] }));
  }
  if (outcome === "success") store.dispatch(ev.success(id));
  else if (outcome === "error") store.dispatch(ev.error(id, nodes.at(-1), "boom"));
  store.dispatch({ type: "executing", data: { node: null, prompt_id: id } });
}

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

test("out-of-order: late executing/progress after success never reopen a prompt", () => {
  const store = storeWith();
  runPrompt(store, "P");
  const before = JSON.stringify(store.get("P"));
  const version = store.version;
  assert.equal(store.dispatch(ev.executing("P", "2")), false);
  assert.equal(store.dispatch(ev.progress("P", "2", 1, 2)), false);
  assert.equal(store.dispatch(ev.state("P", { 2: [1, 2, "running"] })), false);
  assert.equal(store.dispatch(ev.start("P")), false);
  assert.equal(
    store.dispatch({ type: "parallel.job", data: { prompt_id: "P", status: "running" } }),
    false,
  );
  assert.equal(store.get("P").status, "success");
  assert.equal(JSON.stringify(store.get("P")), before);
  assert.equal(store.version, version);
});

test("terminal status is sticky for error and interrupted", () => {
  const store = storeWith();
  store.dispatch(ev.start("E"));
  store.dispatch(ev.error("E", "4", "out of memory"));
  store.dispatch(ev.success("E"));
  store.dispatch(ev.interrupted("E", "4"));
  const e = store.get("E");
  assert.equal(e.status, "error");
  assert.deepEqual(
    { message: e.error.message, node_id: e.error.node_id, type: e.error.type },
    { message: "out of memory", node_id: "4", type: "RuntimeError" },
  );
  assert.equal(e.finished_at, 9_000);

  store.dispatch(ev.start("I"));
  store.dispatch(ev.interrupted("I", "2"));
  store.dispatch(ev.error("I", "2", "late"));
  assert.equal(store.get("I").status, "interrupted");
  assert.equal(store.get("I").error, null);
});

test("executing null alone infers success, which an explicit outcome may still correct", () => {
  const store = storeWith();
  store.dispatch(ev.start("P"));
  store.dispatch({ type: "executing", data: { node: null, prompt_id: "P" } });
  assert.equal(store.get("P").status, "success");
  assert.equal(store.get("P").status_inferred, true);
  store.dispatch(ev.error("P", "7", "late error"));
  assert.equal(store.get("P").status, "error");
  assert.equal(store.get("P").status_inferred, false);
  assert.equal(store.get("P").error.message, "late error");
  store.dispatch(ev.success("P"));
  assert.equal(store.get("P").status, "error", "explicit terminal status is sticky");
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

test("executed with merge appends list outputs", () => {
  const store = storeWith();
  store.dispatch(ev.executed("P", "9", { images: [{ filename: "a.png" }] }));
  store.dispatch({
    type: "executed",
    data: {
      node: "9",
      display_node: "9",
      prompt_id: "P",
      merge: true,
      output: { images: [{ filename: "b.png" }] },
    },
  });
  assert.deepEqual(
    store.get("P").outputs["9"].images.map((i) => i.filename),
    ["a.png", "b.png"],
  );
});

test("unknown prompt ids: id-carrying events create entries; id-less ones only when unambiguous", () => {
  const store = storeWith();
  store.dispatch(ev.executed("ghost", "3", { text: ["hi"] }));
  assert.equal(store.get("ghost").outputs["3"].text[0], "hi");
  assert.equal(store.get("never-seen"), undefined);

  // The frontend's `api` delivers executing as a bare node id: attribute to the only running prompt.
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
  assert.equal(store.cap, 0);
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

test("snapshot rebuild merges jobs, removes stale active prompts, keeps sticky outcomes", () => {
  const store = storeWith();
  store.dispatch(ev.queued("done-here", "wf"));
  runPrompt(store, "done-here");
  store.dispatch(ev.start("still-running"));
  store.dispatch(ev.progress("still-running", "4", 2, 8));
  store.dispatch(ev.start("vanished"));
  store.dispatch(ev.queued("finished-while-away", "wf-2"));
  store.dispatch(ev.start("finished-while-away"));
  const since = store.version;
  store.dispatch(ev.queued("just-queued", "wf-3"));

  store.dispatch({
    type: "parallel.snapshot",
    data: {
      since_version: since,
      jobs: [
        { prompt_id: "still-running", status: "running", executor: "local", number: 7 },
        {
          prompt_id: "finished-while-away",
          status: "error",
          executor: "local",
          finished_at: 1_700_000_000,
          error: { message: "bad input", node_id: "3", node_type: "ImageScale" },
        },
        { prompt_id: "done-here", status: "running", executor: "local" },
        {
          prompt_id: "remote-1",
          status: "running",
          executor: "runpod:ep1",
          workflow_id: "wf-9",
          started_at: "2024-01-01T00:00:00Z",
        },
        {
          prompt_id: "old",
          status: "success",
          executor: "local",
          outputs: { 9: { images: [{ filename: "o.png" }] } },
        },
      ],
    },
  });
  assert.equal(store.get("vanished"), undefined, "active prompt unknown to the server is removed");
  assert.equal(store.get("just-queued").status, "queued", "changed after since_version: kept");
  assert.equal(store.get("still-running").status, "running");
  assert.equal(store.get("still-running").number, 7);
  assert.equal(store.get("still-running").nodes["4"].value, 2, "local progress survives");
  const away = store.get("finished-while-away");
  assert.equal(away.status, "error");
  assert.equal(away.error.message, "bad input");
  assert.equal(away.finished_at, 1_700_000_000_000, "seconds are normalised to ms");
  assert.equal(away.workflow_id, "wf-2");
  assert.equal(store.get("done-here").status, "success", "terminal stays terminal");
  assert.equal(store.get("remote-1").executor, "runpod:ep1");
  assert.equal(store.get("remote-1").started_at, Date.parse("2024-01-01T00:00:00Z"));
  assert.deepEqual(store.get("old").outputs["9"].images[0].filename, "o.png");

  // Without since_version every active prompt missing from the snapshot goes.
  store.dispatch({ type: "parallel.snapshot", data: { jobs: [] } });
  assert.deepEqual(
    store.all().filter((s) => s.status === "running" || s.status === "queued"),
    [],
  );
  assert.ok(store.get("old"));
});

test("parallel.job follows an offloaded prompt", () => {
  const store = storeWith();
  store.dispatch(ev.queued("J", "wf", { executor: "runpod:ep1" }));
  store.dispatch({
    type: "parallel.job",
    data: { prompt_id: "J", status: "running", executor: "runpod:ep1", remote_status: "IN_QUEUE" },
  });
  assert.equal(store.get("J").status, "running");
  assert.equal(store.get("J").remote_status, "IN_QUEUE");
  store.dispatch({
    type: "parallel.job",
    data: {
      prompt_id: "J",
      status: "error",
      executor: "runpod:ep1",
      remote_status: "FAILED",
      error: "worker died",
    },
  });
  assert.equal(store.get("J").status, "error");
  assert.equal(store.get("J").error.message, "worker died");
  assert.equal(store.get("J").remote_status, "FAILED");
});

test("a remote that fails to answer shows as a warning until it recovers", () => {
  const store = storeWith();
  store.dispatch(ev.queued("W", "wf", { executor: "runpod:ep1" }));
  const job = (extra) => ({
    type: "parallel.job",
    data: { prompt_id: "W", status: "running", executor: "runpod:ep1", ...extra },
  });
  store.dispatch(job({ warning: "RunPod answered HTTP 500 (3 checks in a row)" }));
  assert.equal(store.get("W").warning, "RunPod answered HTTP 500 (3 checks in a row)");
  assert.equal(store.get("W").status, "running");
  store.dispatch(job({ remote_status: "IN_PROGRESS" })); // no warning key: unchanged
  assert.equal(store.get("W").warning, "RunPod answered HTTP 500 (3 checks in a row)");
  store.dispatch(job({ warning: null }));
  assert.equal(store.get("W").warning, null);
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

test("previews: only the latest per prompt is kept, replaced ones are reported", () => {
  const evicted = [];
  const store = storeWith({
    onEvict: (preview, id, reason) => evicted.push([id, preview.blob_or_url, reason]),
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

test("status events record the queue length and the session id", () => {
  const store = storeWith();
  store.dispatch({
    type: "status",
    data: { status: { exec_info: { queue_remaining: 2 } }, sid: "abc" },
  });
  assert.equal(store.queueRemaining, 2);
  assert.equal(store.sessionId, "abc");
  store.dispatch({ type: "status", data: { exec_info: { queue_remaining: 0 } } }); // api's detail
  assert.equal(store.queueRemaining, 0);
  assert.equal(store.dispatch({ type: "status", data: null }), false);
});

test("stores are independent (no shared module state)", () => {
  const one = storeWith();
  const two = storeWith();
  one.dispatch(ev.start("A"));
  assert.equal(two.get("A"), undefined);
  assert.equal(two.version, 0);
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
