import { test } from "node:test";
import assert from "node:assert/strict";

import { healthText } from "../../web/views/executor_health.js";

test("an executor's line says whether it can be used and how busy it is", () => {
  assert.equal(healthText({ executor: "local", kind: "local" }), "local: ready");
  assert.equal(
    healthText({ executor: "comfyui:b", health: { executor: "comfyui:b", reachable: false } }),
    "comfyui:b: unreachable",
  );
  const idle = { executor: "local", reachable: true, queued: 0, running: 0, estimated_wait: 0 };
  assert.equal(healthText({ health: idle }), "local: idle");
  const busy = {
    executor: "comfyui:gpu2",
    reachable: true,
    queued: 2,
    running: 1,
    estimated_wait: 14.6,
    detail: "cuda:0 NVIDIA RTX 4090",
  };
  assert.equal(
    healthText({ health: busy }),
    "comfyui:gpu2: 1 running, 2 waiting · ~15 s wait · cuda:0 NVIDIA RTX 4090",
  );
  const runpod = { executor: "runpod:ep", reachable: true, queued: 0, running: 0, idle_workers: 3 };
  assert.equal(healthText({ health: runpod }), "runpod:ep: idle · 3 idle worker(s)");
});
