// Unit tests for web/hooks/queue_scope.js: the frontend's own queue and job lists follow the
// "Show prompts from" scope, and learn where offloaded prompts run.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ALL_CLIENTS,
  CLIENT_PARAM,
  executorsIn,
  installQueueScope,
  isListRequest,
  noteExecutors,
  scopedRoute,
} from "../../web/hooks/queue_scope.js";
import { createShowScope } from "../../web/state/show_scope.js";

const ME = "3f1c0e";
const tab = { from: "tab", clientId: ME };

test("list requests carry this tab's client id while the scope is this tab", () => {
  const jobs = "/jobs?status=in_progress,pending&limit=200&offset=0";
  assert.equal(
    scopedRoute(jobs, undefined, tab),
    `/jobs?status=in_progress%2Cpending&limit=200&offset=0&${CLIENT_PARAM}=${ME}`,
  );
  assert.equal(scopedRoute("/queue", { method: "GET" }, tab), `/queue?${CLIENT_PARAM}=${ME}`);
  assert.equal(scopedRoute("/api/queue", undefined, tab), `/api/queue?${CLIENT_PARAM}=${ME}`);
  assert.equal(
    scopedRoute("/history?max_items=64", undefined, tab),
    `/history?max_items=64&${CLIENT_PARAM}=${ME}`,
  );
  // a list's Clear clears what the list shows
  assert.equal(scopedRoute("/queue", { method: "POST" }, tab), `/queue?${CLIENT_PARAM}=${ME}`);
  assert.equal(scopedRoute("/history", { method: "post" }, tab), `/history?${CLIENT_PARAM}=${ME}`);
});

test("everything else goes as it is", () => {
  const all = { from: "all", clientId: ME };
  assert.equal(scopedRoute("/jobs?limit=1", undefined, all), "/jobs?limit=1");
  assert.equal(scopedRoute("/queue", undefined, { from: "tab", clientId: null }), "/queue");
  for (const [route, options] of [
    ["/jobs/abc", undefined], // one job: no list
    ["/jobs/cancel", { method: "POST" }],
    ["/jobs/abc/cancel", { method: "POST" }],
    ["/prompt", { method: "POST" }],
    ["/interrupt", { method: "POST" }],
    ["/history/abc", undefined],
    ["/parallel/jobs", undefined],
    ["/queue", { method: "DELETE" }],
  ]) {
    assert.equal(scopedRoute(route, options, tab), route, route);
  }
  assert.equal(scopedRoute("/queue", ALL_CLIENTS, tab), "/queue"); // the package's own lookups
  assert.equal(isListRequest("/api/jobs?x=1"), true);
  assert.equal(isListRequest("/jobs", { method: "POST" }), false);
});

test("executors of offloaded prompts are read from /jobs or /queue answers, local ones not", () => {
  const jobs = {
    jobs: [
      { id: "a", status: "in_progress" },
      { id: "b", status: "pending", parallel_runs: { executor: "comfyui:gpu2" } },
      { id: "c", status: "completed", parallel_runs: { executor: "local" } },
      { id: 4, parallel_runs: { executor: "runpod:x" } },
      null,
    ],
  };
  assert.deepEqual(executorsIn("/api/jobs?status=pending", jobs), [["b", "comfyui:gpu2"]]);
  const queue = {
    queue_running: [
      [0, "a", {}, { client_id: ME }, []],
      [1, "b", {}, { parallel_runs: { executor: "runpod:ep" } }, []],
    ],
    queue_pending: [[2, "c", {}, null, []], "odd"],
  };
  assert.deepEqual(executorsIn("/queue", queue), [["b", "runpod:ep"]]);
  assert.deepEqual(executorsIn("/history", { x: {} }), []);
  assert.deepEqual(executorsIn("/jobs", null), []);
});

test("noted executors keep the newest 500", () => {
  const executors = new Map();
  noteExecutors(executors, Array.from({ length: 520 }, (_, i) => [`p${i}`, "comfyui:a"]));
  assert.equal(executors.size, 500);
  assert.equal(executors.has("p19"), false);
  noteExecutors(executors, [["p20", "comfyui:b"]]);
  assert.equal([...executors.keys()].at(-1), "p20");
});

function fakeApi(answers) {
  const listeners = new Map();
  const api = {
    asked: [],
    dispatched: [],
    async fetchApi(route, options) {
      api.asked.push([route, options?.method ?? "GET"]);
      const body = answers[route.split("?")[0]] ?? {};
      return {
        ok: true,
        clone: () => ({ json: async () => body }),
        json: async () => body,
      };
    },
    addEventListener(type, fn) {
      listeners.set(type, [...(listeners.get(type) ?? []), fn]);
    },
    removeEventListener(type, fn) {
      listeners.set(type, (listeners.get(type) ?? []).filter((f) => f !== fn));
    },
    dispatchCustomEvent(type, detail) {
      api.dispatched.push([type, detail]);
      for (const fn of listeners.get(type) ?? []) fn({ detail });
    },
  };
  return api;
}

test("installed: requests follow the scope, executors are noted, a scope change reloads", async () => {
  const remote = { jobs: [{ id: "r", parallel_runs: { executor: "comfyui:other" } }] };
  const api = fakeApi({ "/jobs": remote });
  const stockFetch = api.fetchApi;
  const scope = createShowScope({ from: "tab" });
  const executors = new Map();
  let noted = 0;
  const onNoted = () => noted++;
  const undo = installQueueScope({ api, scope, clientId: () => ME, executors, onNoted });

  await api.fetchApi("/jobs?status=in_progress,pending&limit=200&offset=0");
  await api.fetchApi("/prompt", { method: "POST", body: "{}" });
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(api.asked, [
    [`/jobs?status=in_progress%2Cpending&limit=200&offset=0&${CLIENT_PARAM}=${ME}`, "GET"],
    ["/prompt", "POST"],
  ]);
  assert.deepEqual([...executors], [["r", "comfyui:other"]]);
  assert.equal(noted, 1);

  scope.set("all"); // no status seen yet: nothing to send again
  assert.deepEqual(api.dispatched, []);
  const status = { exec_info: { queue_remaining: 2 } };
  api.dispatchCustomEvent("status", status); // as ComfyUI's websocket message arrives
  scope.set("tab");
  assert.deepEqual(api.dispatched.at(-1), ["status", status]); // the same status, again
  await api.fetchApi("/queue");
  assert.deepEqual(api.asked.at(-1), [`/queue?${CLIENT_PARAM}=${ME}`, "GET"]);

  undo();
  assert.equal(api.fetchApi, stockFetch);
  scope.set("all");
  assert.equal(api.dispatched.length, 2); // unsubscribed
});
