// Unit tests for web/state/jobs.js: parallel.queued, parallel.job and parallel.snapshot.
import assert from "node:assert/strict";
import { test } from "node:test";

import { JOB_HANDLERS } from "../../web/state/jobs.js";
import { advance, touch } from "../../web/state/records.js";
import { ensure } from "../../web/state/registry.js";
import { ev, feed, registryWith, runPrompt, storeWith } from "./state_events.mjs";

test("parallel.queued fills in what the queue hook knows and stamps the queue time once", () => {
  const reg = registryWith({ now: () => 123 });
  const queued = ev.queued("P", "wf-1", { number: 4, node_ids: ["1", "2"], client_id: "c1" });
  assert.deepEqual(feed(JOB_HANDLERS, reg, queued, queued), [true, false]);
  const s = reg.records.get("P").s;
  assert.deepEqual(
    [s.workflow_id, s.executor, s.client_id, s.number, s.node_ids, s.queued_at, s.status],
    ["wf-1", "local", "c1", 4, ["1", "2"], 123, "queued"],
  );
  feed(JOB_HANDLERS, reg, ev.queued("P", null, { executor: null, queued_at: 5 }));
  const kept = [s.workflow_id, s.executor, s.queued_at];
  assert.deepEqual(kept, ["wf-1", "local", 123], "no downgrade");
  feed(JOB_HANDLERS, reg, ev.queued("Q", "wf", { queued_at: 1_700_000_000 }));
  assert.equal(reg.records.get("Q").s.queued_at, 1_700_000_000_000, "the server's time, seconds");
});

test("parallel.job advances the status, keeps outputs and normalises a string error", () => {
  const reg = registryWith();
  const job = (extra) => ev.job({ prompt_id: "J", executor: "runpod:ep1", ...extra });
  const inQueue = job({ status: "running", remote_status: "IN_QUEUE" });
  assert.deepEqual(feed(JOB_HANDLERS, reg, inQueue, inQueue), [true, false]);
  assert.deepEqual(feed(JOB_HANDLERS, reg, job({ status: "mystery" })), [false], "unknown status");
  feed(JOB_HANDLERS, reg, job({ status: "error", error: "worker died", finished_at: 2e12 }));
  const s = reg.records.get("J").s;
  assert.deepEqual([s.status, s.finished_at], ["error", 2_000_000_000_000]);
  assert.deepEqual(s.error, { message: "worker died", node_id: null, node_type: null });
  feed(JOB_HANDLERS, reg, job({ status: "success", outputs: { 9: { images: ["o.png"] } } }));
  assert.equal(s.status, "error", "terminal stays");
  assert.deepEqual(s.outputs, { 9: { images: ["o.png"] } }, "outputs still arrive");
});

test("parallel.job error objects keep their fields in the panel's shape", () => {
  const reg = registryWith();
  const error = { exception_message: "bad input", node_id: 3, traceback: ["t"] };
  feed(JOB_HANDLERS, reg, ev.job({ prompt_id: "E", status: "error", error }));
  assert.deepEqual(reg.records.get("E").s.error, {
    exception_message: "bad input",
    traceback: ["t"],
    message: "bad input",
    node_id: "3",
    node_type: null,
  });
});

test("a warning stays until a summary clears it with null", () => {
  const reg = registryWith();
  const job = (extra) => ev.job({ prompt_id: "W", status: "running", ...extra });
  feed(JOB_HANDLERS, reg, job({ warning: "RunPod answered HTTP 500" }));
  assert.deepEqual(feed(JOB_HANDLERS, reg, job({ remote_status: "IN_PROGRESS" })), [true]);
  assert.equal(reg.records.get("W").s.warning, "RunPod answered HTTP 500", "no key: unchanged");
  assert.deepEqual(feed(JOB_HANDLERS, reg, job({ warning: 42 })), [true]);
  assert.equal(reg.records.get("W").s.warning, null, "only text is a warning");
});

test("a snapshot removes active prompts the server forgot, unless they changed since", () => {
  const evicted = [];
  const reg = registryWith({ onPreviewEvicted: (p, id, why) => evicted.push([id, why]) });
  for (const id of ["gone", "fresh", "kept", "done"]) advance(reg, ensure(reg, id), "running");
  advance(reg, ensure(reg, "done"), "success");
  ensure(reg, "gone").s.preview = { blob_or_url: "g" };
  reg.version = 10;
  touch(reg, ensure(reg, "fresh")); // changed in version 11, after the snapshot was asked for
  const snapshot = { since_version: 10, jobs: [{ prompt_id: "kept", status: "running" }, {}] };
  assert.deepEqual(feed(JOB_HANDLERS, reg, { type: "parallel.snapshot", data: snapshot }), [true]);
  assert.deepEqual([...reg.records.keys()], ["fresh", "kept", "done"]);
  assert.deepEqual(evicted, [["gone", "removed"]]);
  assert.equal(ensure(reg, "gone"), null, "late events do not bring it back");
  assert.deepEqual(feed(JOB_HANDLERS, reg, { type: "parallel.snapshot", data: null }), [true]);
  assert.deepEqual([...reg.records.keys()], ["done"]);
});

test("a snapshot applies finished jobs oldest first, so the cap keeps the newest", () => {
  const reg = registryWith();
  const jobs = [3, 1, 2].map((t) => ({ prompt_id: `p${t}`, status: "success", finished_at: t }));
  feed(JOB_HANDLERS, reg, { type: "parallel.snapshot", data: { jobs } });
  assert.deepEqual([...reg.finishedOrder], ["p1", "p2", "p3"]);
});

// ---- through the store --------------------------------------------------------------------------

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
  store.dispatch(
    ev.job({
      prompt_id: "J",
      status: "running",
      executor: "runpod:ep1",
      remote_status: "IN_QUEUE",
    }),
  );
  assert.equal(store.get("J").status, "running");
  assert.equal(store.get("J").remote_status, "IN_QUEUE");
  store.dispatch(
    ev.job({
      prompt_id: "J",
      status: "error",
      executor: "runpod:ep1",
      remote_status: "FAILED",
      error: "worker died",
    }),
  );
  assert.equal(store.get("J").status, "error");
  assert.equal(store.get("J").error.message, "worker died");
  assert.equal(store.get("J").remote_status, "FAILED");
});

test("a remote that fails to answer shows as a warning until it recovers", () => {
  const store = storeWith();
  store.dispatch(ev.queued("W", "wf", { executor: "runpod:ep1" }));
  const job = (extra) =>
    ev.job({ prompt_id: "W", status: "running", executor: "runpod:ep1", ...extra });
  store.dispatch(job({ warning: "RunPod answered HTTP 500 (3 checks in a row)" }));
  assert.equal(store.get("W").warning, "RunPod answered HTTP 500 (3 checks in a row)");
  assert.equal(store.get("W").status, "running");
  store.dispatch(job({ remote_status: "IN_PROGRESS" })); // no warning key: unchanged
  assert.equal(store.get("W").warning, "RunPod answered HTTP 500 (3 checks in a row)");
  store.dispatch(job({ warning: null }));
  assert.equal(store.get("W").warning, null);
});
