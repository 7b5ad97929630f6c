// Unit tests for web/state/outcomes.js: how a prompt ends, and which outcome sticks.
import assert from "node:assert/strict";
import { test } from "node:test";

import { OUTCOME_HANDLERS } from "../../web/state/outcomes.js";
import { advance } from "../../web/state/records.js";
import { ensure } from "../../web/state/registry.js";
import { ev, feed, registryWith, storeWith } from "./state_events.mjs";

test("execution_error records ComfyUI's error fields and the server's time", () => {
  const reg = registryWith();
  assert.deepEqual(feed(OUTCOME_HANDLERS, reg, ev.error("E", 4, "out of memory")), [true]);
  const s = reg.records.get("E").s;
  assert.equal(s.status, "error");
  assert.equal(s.finished_at, 9_000);
  assert.deepEqual(s.error, {
    message: "out of memory",
    type: "RuntimeError",
    node_id: "4",
    node_type: "SlowPassthrough",
    traceback: ["line 1"],
    executed: [],
  });
});

test("the first outcome sticks; later ones change nothing, the error included", () => {
  const reg = registryWith();
  const results = feed(
    OUTCOME_HANDLERS,
    reg,
    ev.interrupted("I", "2"),
    ev.error("I", "2", "late"),
    ev.success("I"),
  );
  assert.deepEqual(results, [true, false, false]);
  const s = reg.records.get("I").s;
  assert.deepEqual([s.status, s.error, s.finished_at], ["interrupted", null, 9_500]);
  assert.deepEqual(feed(OUTCOME_HANDLERS, reg, { type: "execution_success", data: {} }), [false]);
});

test("an explicit outcome corrects an inferred one, and brings its error", () => {
  const reg = registryWith();
  advance(reg, ensure(reg, "P"), "success", 100, { inferred: true });
  assert.deepEqual(feed(OUTCOME_HANDLERS, reg, ev.error("P", "7", "late error")), [true]);
  const s = reg.records.get("P").s;
  assert.deepEqual([s.status, s.status_inferred, s.error.message], ["error", false, "late error"]);
  assert.equal(s.finished_at, 9_000);
});

test("an explicit success confirms an inferred one without a new error", () => {
  const reg = registryWith();
  advance(reg, ensure(reg, "P"), "success", 100, { inferred: true });
  assert.deepEqual(feed(OUTCOME_HANDLERS, reg, ev.success("P", 200)), [true]);
  const s = reg.records.get("P").s;
  const seen = [s.status, s.status_inferred, s.error, s.finished_at];
  assert.deepEqual(seen, ["success", false, null, 100]);
});

test("through the store: terminal status is sticky for error and interrupted", () => {
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

test("through the store: executing null infers success, which an explicit outcome may correct", () => {
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
