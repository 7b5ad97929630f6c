// The pure parts of the extension's wiring: queue routing, executor choice, title, panel
// formatting and the per-tab output merge. The DOM and ComfyUI sides are covered by the
// browser tests; these pin down the decisions those sides rely on.
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatElapsed, outputImages } from "../../web/views/panel.js";
import {
  autoOptions,
  executorChoice,
  nodeNames,
  OFFLOAD_ROUTE,
  planQueue,
} from "../../web/hooks/queue_hook.js";
import { selectValue } from "../../web/views/executor_choice.js";
import { titleFor } from "../../web/views/title.js";
import { mergeNodeOutput, workflowKey } from "../../web/hooks/workflow_tabs.js";

function queueBody(extra = {}) {
  return {
    client_id: "client-1",
    prompt: {
      1: { class_type: "EmptyImage", inputs: {}, _meta: { title: "Blank" } },
      2: { class_type: "SaveImage", inputs: {} },
    },
    extra_data: {
      extra_pnginfo: { workflow: { id: "wf-a", extra } },
      auth_token_comfy_org: "secret-token",
      api_key_comfy_org: "secret-key",
    },
  };
}

const LOCAL = { kind: "local", name: null, id: "local" };
const choose = (parallel_runs) => executorChoice({ extra: { parallel_runs } });

test("executorChoice defaults to local and needs runpod spelled out", () => {
  assert.deepEqual(executorChoice(undefined), LOCAL);
  assert.deepEqual(executorChoice({ extra: {} }), LOCAL);
  assert.deepEqual(choose({ executor: "RunPod" }), LOCAL);
  assert.deepEqual(choose({ executor: "elsewhere:gpu" }), LOCAL);
  assert.deepEqual(choose({ executor: "runpod" }), { kind: "runpod", name: null, id: "runpod" });
  assert.deepEqual(choose({ executor: "runpod:ep-1" }), {
    kind: "runpod",
    name: "ep-1",
    id: "runpod:ep-1",
  });
});

test("executorChoice names a ComfyUI server; the older endpoint_id is RunPod's only", () => {
  assert.deepEqual(choose({ executor: "comfyui:gpu2" }), {
    kind: "comfyui",
    name: "gpu2",
    id: "comfyui:gpu2",
  });
  assert.equal(choose({ executor: "comfyui", endpoint_id: "ep-1" }).id, "comfyui");
  assert.equal(selectValue(choose({ executor: "comfyui:gpu2" })), "comfyui:gpu2");
  assert.equal(selectValue(choose({ executor: "runpod:ep-1" })), "runpod");
  assert.equal(selectValue(choose({})), "local");
});

test("executorChoice reads the older {executor: 'runpod', endpoint_id} form", () => {
  assert.equal(choose({ executor: "runpod", endpoint_id: "  ep-1 " }).id, "runpod:ep-1");
  assert.equal(choose({ executor: "runpod", endpoint_id: 42 }).id, "runpod");
  assert.equal(choose({ executor: "runpod", endpoint_id: "a b/../c" }).id, "runpod");
  // the named form wins over a leftover endpoint_id
  assert.equal(choose({ executor: "runpod:ep-2", endpoint_id: "ep-1" }).id, "runpod:ep-2");
});

test("a local prompt keeps its route and gets a prompt id chosen before sending", () => {
  const plan = planQueue(queueBody(), "fallback");
  assert.equal(plan.route, null);
  assert.match(plan.body.prompt_id, /^[0-9a-f-]{36}$/);
  assert.equal(plan.record.prompt_id, plan.body.prompt_id);
  assert.equal(plan.record.workflow_id, "wf-a");
  assert.equal(plan.record.executor, "local");
  assert.deepEqual(plan.record.node_ids, ["1", "2"]);
  // the frontend's own body is passed on whole, credentials included (the local server needs them)
  assert.equal(plan.body.extra_data.auth_token_comfy_org, "secret-token");
  const kept = planQueue({ ...queueBody(), prompt_id: "given" }, "fallback");
  assert.equal(kept.body.prompt_id, "given");
});

test("a RunPod prompt goes to the offload route without Comfy.org credentials", () => {
  const plan = planQueue(
    queueBody({ parallel_runs: { executor: "runpod:ep-9" } }),
    "fallback",
  );
  assert.equal(plan.route, OFFLOAD_ROUTE);
  assert.deepEqual(Object.keys(plan.body).sort(), [
    "client_id",
    "executor",
    "extra_data",
    "prompt",
  ]);
  assert.equal(plan.body.executor, "runpod:ep-9");
  assert.equal("auth_token_comfy_org" in plan.body.extra_data, false);
  assert.equal("api_key_comfy_org" in plan.body.extra_data, false);
  assert.equal(plan.record.executor, "runpod:ep-9");
  assert.equal(plan.record.prompt_id, undefined); // the server names offloaded prompts
});

test("a workflow without an id falls back to the visible tab's key", () => {
  const body = queueBody();
  delete body.extra_data.extra_pnginfo.workflow.id;
  assert.equal(planQueue(body, "visible-tab").record.workflow_id, "visible-tab");
});

test("nodeNames prefers the title, then the class", () => {
  assert.deepEqual(nodeNames(queueBody().prompt), { 1: "Blank", 2: "SaveImage" });
  assert.deepEqual(nodeNames(undefined), {});
});

test("titleFor prefixes while prompts are in flight and restores the plain title", () => {
  assert.equal(titleFor("ComfyUI", { running: 0, fraction: 0 }), "ComfyUI");
  assert.equal(titleFor("ComfyUI", { running: 2, fraction: 0.456 }), "[2 running 46%] ComfyUI");
  const queued = titleFor("ComfyUI", { running: 1, fraction: 0.5 }, 1);
  assert.equal(queued, "[1 running +1 queued 50%] ComfyUI");
  // re-applying never stacks prefixes; idle strips ours
  assert.equal(titleFor(queued, { running: 1, fraction: 1 }), "[1 running 100%] ComfyUI");
  assert.equal(titleFor(queued, { running: 0, fraction: 0 }), "ComfyUI");
});

test("formatElapsed reads as seconds, then minutes", () => {
  assert.equal(formatElapsed(4200), "4.2 s");
  assert.equal(formatElapsed(185_000), "3 min 05 s");
  assert.equal(formatElapsed(-1), "");
  assert.equal(formatElapsed(undefined), "");
});

test("outputImages lists every image of every node, skipping nameless entries", () => {
  const images = outputImages({
    4: { images: [{ filename: "a.png", subfolder: "", type: "output" }, { subfolder: "x" }] },
    7: { text: ["not an image"] },
    9: { images: [{ filename: "b.png", type: "temp" }] },
  });
  assert.deepEqual(
    images.map((image) => [image.node, image.filename, image.type]),
    [
      ["4", "a.png", "output"],
      ["9", "b.png", "temp"],
    ],
  );
});

test("mergeNodeOutput appends list outputs only when asked to merge", () => {
  const first = { images: [{ filename: "1.png" }], text: "a" };
  const next = { images: [{ filename: "2.png" }], text: "b" };
  assert.equal(mergeNodeOutput(first, next, false), next);
  assert.deepEqual(mergeNodeOutput(first, next, true), {
    images: [{ filename: "1.png" }, { filename: "2.png" }],
    text: "b",
  });
  assert.equal(mergeNodeOutput(undefined, next, true), next);
});

test("workflowKey names a tab by its graph id", () => {
  assert.equal(workflowKey({ activeState: { id: "g-1" }, initialState: { id: "g-0" } }), "g-1");
  assert.equal(workflowKey({ initialState: { id: "g-0" } }), "g-0");
  assert.equal(workflowKey(null), null);
});

test("Auto's options come from the settings, with empty meaning all and 0 never", () => {
  assert.deepEqual(autoOptions("", 0), { allowed: null, paid_after: null });
  assert.deepEqual(autoOptions(" local, comfyui:gpu2 ,,", "120"), {
    allowed: ["local", "comfyui:gpu2"],
    paid_after: 120,
  });
  assert.deepEqual(autoOptions(undefined, "nonsense"), { allowed: null, paid_after: null });
  assert.equal(autoOptions("", 1e9).paid_after, 86400);
});

test("a workflow on Auto is planned where Auto chose", () => {
  const body = queueBody({ parallel_runs: { executor: "auto" } });
  assert.equal(executorChoice(body.extra_data.extra_pnginfo.workflow).kind, "auto");
  const remote = planQueue(body, "f", executorChoice({ extra: { parallel_runs: { executor: "comfyui:b" } } }));
  assert.equal(remote.route, OFFLOAD_ROUTE);
  assert.equal(remote.body.executor, "comfyui:b");
  assert.equal(remote.record.executor, "comfyui:b");
  const local = planQueue(body, "f", executorChoice({}));
  assert.equal(local.route, null);
  assert.equal(local.record.executor, "local");
});
