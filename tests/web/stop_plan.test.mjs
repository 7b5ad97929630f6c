// Which prompts the frontend's Stop and Stop all act on, and how (state/stop_plan.js), and the
// thin wiring that carries a plan out and hooks the frontend's Comfy.Interrupt command
// (hooks/stop_hook.js), with the frontend and the server replaced by plain objects.
import assert from "node:assert/strict";
import { test } from "node:test";

import { describeStop, planStop, stopAction } from "../../web/state/stop_plan.js";
import { createStops, installStopHook, toaster } from "../../web/hooks/stop_hook.js";

const prompt = (prompt_id, workflow_id, status, executor = "local", client_id = "me") => ({
  prompt_id,
  workflow_id,
  status,
  executor,
  client_id,
});

// Tab A: one local prompt running, one finished. Tab B: one on a ComfyUI server, one local
// waiting, one on RunPod still queued there. Tab C: another client's prompt.
const PROMPTS = [
  prompt("a-run", "A", "running"),
  prompt("a-done", "A", "success"),
  prompt("b-remote", "B", "running", "comfyui:gpu2"),
  prompt("b-wait", "B", "queued"),
  prompt("b-runpod", "B", "queued", "runpod:ep"),
  prompt("c-other", "C", "running", "local", "someone-else"),
  prompt("b-error", "B", "error", "comfyui:gpu2"),
];
const ids = (plan) => plan.map((step) => `${step.prompt.prompt_id}:${step.action}`);

test("each prompt is stopped where it runs", () => {
  assert.equal(stopAction(prompt("x", "A", "running")), "interrupt");
  assert.equal(stopAction(prompt("x", "A", "queued")), "delete");
  assert.equal(stopAction({ prompt_id: "x", status: "queued", executor: null }), "delete");
  assert.equal(stopAction(prompt("x", "A", "running", "comfyui:gpu2")), "cancel");
  assert.equal(stopAction(prompt("x", "A", "queued", "runpod:ep")), "cancel");
});

test("Stop on a tab stops only that tab's prompts in flight, waiting ones first", () => {
  assert.deepEqual(ids(planStop(PROMPTS, { workflowId: "B", clientId: "me" })), [
    "b-wait:delete",
    "b-remote:cancel",
    "b-runpod:cancel",
  ]);
  assert.deepEqual(ids(planStop(PROMPTS, { workflowId: "A", clientId: "me" })), [
    "a-run:interrupt",
  ]);
});

test("nothing in flight on the tab, no tab on screen, or another client's tab: no stop", () => {
  assert.deepEqual(planStop(PROMPTS, { workflowId: "D", clientId: "me" }), []);
  assert.deepEqual(planStop(PROMPTS, { workflowId: null, clientId: "me" }), []);
  assert.deepEqual(planStop(PROMPTS, { workflowId: "C", clientId: "me" }), []);
  assert.deepEqual(planStop([], { workflowId: "A" }), []);
});

test("Stop all stops this client's prompts on every tab, running local ones last", () => {
  const plan = planStop(PROMPTS, { clientId: "me" });
  assert.deepEqual(ids(plan), ["b-wait:delete", "b-remote:cancel", "b-runpod:cancel", "a-run:interrupt"]);
  // a prompt whose client is unknown (learnt from events only) counts as this client's
  const unknown = { ...prompt("u", "A", "running"), client_id: null };
  assert.deepEqual(ids(planStop([unknown], { clientId: "me" })), ["u:interrupt"]);
  // without a client id (not connected yet) every prompt the page knows counts
  assert.equal(planStop(PROMPTS, {}).length, 5);
});

test("the message says what was stopped, or that there was nothing, or what failed", () => {
  assert.deepEqual(describeStop([], "tab"), {
    severity: "info",
    summary: "Nothing to stop",
    detail: "No prompt of this workflow tab is running or waiting.",
  });
  assert.match(describeStop([], "all").detail, /in flight from this browser tab/);
  const plan = planStop(PROMPTS, { clientId: "me" });
  const ok = { ok: true, message: "interrupt sent" };
  assert.deepEqual(describeStop(plan, "all", plan.map(() => ok)), {
    severity: "info",
    summary: "Stopping",
    detail: "4 prompts in flight from this browser tab: 1 running here, 1 waiting here, 2 elsewhere.",
  });
  const one = planStop(PROMPTS, { workflowId: "A", clientId: "me" });
  assert.equal(describeStop(one, "tab").detail, "1 prompt of this workflow tab: 1 running here.");
  const failed = describeStop(one, "tab", [{ ok: false, message: "HTTP 502" }]);
  assert.equal(failed.severity, "warn");
  assert.equal(failed.summary, "1 prompt could not be stopped");
  assert.match(failed.detail, /HTTP 502$/);
});

function fakeStore(prompts) {
  return { all: () => prompts };
}

test("createStops carries a plan out one prompt at a time, in order, and reports once", async () => {
  const calls = [];
  const notes = [];
  let visible = "B";
  const stops = createStops({
    store: fakeStore(PROMPTS),
    tabs: { visibleId: () => visible },
    clientId: () => "me",
    stop: async (p) => {
      calls.push(`start ${p.prompt_id}`);
      await new Promise((resolve) => setImmediate(resolve));
      calls.push(`end ${p.prompt_id}`);
      if (p.prompt_id === "b-runpod") throw new Error("network down");
      return { ok: true, message: "ok" };
    },
    notify: (note) => notes.push(note),
  });
  await stops.stopVisible();
  assert.deepEqual(calls, [
    "start b-wait",
    "end b-wait",
    "start b-remote",
    "end b-remote",
    "start b-runpod",
    "end b-runpod",
  ]);
  assert.equal(notes.length, 1);
  assert.equal(notes[0].severity, "warn");
  assert.match(notes[0].detail, /Error: network down/);

  calls.length = 0;
  visible = "D";
  await stops.stopVisible();
  assert.deepEqual(calls, []);
  assert.equal(notes.at(-1).summary, "Nothing to stop");

  await stops.stopAll();
  assert.equal(calls.filter((c) => c.startsWith("start")).length, 4);
  assert.equal(calls.at(-1), "end a-run");
});

test("the frontend's Comfy.Interrupt command runs ours; undo gives the stock one back", async () => {
  const stock = async () => "stock";
  const interrupt = { id: "Comfy.Interrupt", function: stock };
  const app = { extensionManager: { command: { commands: [{ id: "Other", function() {} }, interrupt] } } };
  let stopped = 0;
  const undo = installStopHook({ app, stopVisible: async () => (stopped += 1) });
  assert.notEqual(interrupt.function, stock);
  await interrupt.function();
  assert.equal(stopped, 1);
  undo();
  assert.equal(interrupt.function, stock);
});

test("without the command the stock Stop stays and one console line says so", () => {
  for (const app of [{}, { extensionManager: { command: { commands: [] } } }]) {
    const lines = [];
    const undo = installStopHook({
      app,
      stopVisible: async () => {},
      log: { info: (line) => lines.push(line) },
    });
    assert.equal(undo, null);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /Comfy\.Interrupt/);
  }
});

test("toaster uses the frontend's toast API, else the console", () => {
  const toasts = [];
  toaster({ extensionManager: { toast: { add: (t) => toasts.push(t) } } })({
    severity: "info",
    summary: "Nothing to stop",
    detail: "d",
  });
  assert.deepEqual(toasts, [{ severity: "info", summary: "Nothing to stop", detail: "d", life: 4000 }]);
  const lines = [];
  toaster({}, { info: (line) => lines.push(line) })({ severity: "info", summary: "S", detail: "d" });
  assert.deepEqual(lines, ["[parallel-runs] S: d"]);
});
