// Unit tests for web/state/attribution.js: which prompt an event without a prompt id belongs to.
import assert from "node:assert/strict";
import { test } from "node:test";

import { resolve, runningRecords, soleRunning } from "../../web/state/attribution.js";
import { setNode } from "../../web/state/nodes.js";
import { advance } from "../../web/state/records.js";
import { ensure } from "../../web/state/registry.js";
import { registryWith } from "./state_events.mjs";

/** A registry with prompts in the given statuses, by id. */
function prompts(statuses) {
  const reg = registryWith();
  for (const [id, status] of Object.entries(statuses)) advance(reg, ensure(reg, id), status);
  return reg;
}

test("an event's own prompt id decides, even for a prompt not seen yet", () => {
  const reg = prompts({ A: "running" });
  assert.equal(resolve(reg, "B", "1").s.prompt_id, "B");
  assert.equal(resolve(reg, 7, null).s.prompt_id, "7");
  assert.equal(reg.unattributed, 0);
});

test("without an id: the only running prompt owns it, whatever the node", () => {
  const reg = prompts({ Q: "queued", A: "running", D: "success" });
  assert.deepEqual(runningRecords(reg).map((rec) => rec.s.prompt_id), ["A"]);
  assert.equal(resolve(reg, null, "99").s.prompt_id, "A");
  assert.equal(resolve(reg, undefined, null).s.prompt_id, "A");
  assert.equal(soleRunning(reg).s.prompt_id, "A");
  assert.equal(reg.unattributed, 0);
});

test("without an id among several running prompts: the one running that node, else dropped", () => {
  const reg = prompts({ A: "running", B: "running" });
  ensure(reg, "A").s.current_node = "5";
  setNode(ensure(reg, "B"), "8", { state: "running" });
  setNode(ensure(reg, "B"), "5", { state: "finished" });
  assert.equal(resolve(reg, null, "5").s.prompt_id, "A", "B finished node 5");
  assert.equal(resolve(reg, null, "8").s.prompt_id, "B");
  assert.equal(reg.unattributed, 0);

  ensure(reg, "B").s.current_node = "5";
  assert.equal(resolve(reg, null, "5"), null, "both run node 5: ambiguous");
  assert.equal(resolve(reg, null, "42"), null, "nobody runs node 42");
  assert.equal(resolve(reg, null, null), null, "no node to go by");
  assert.equal(soleRunning(reg), null);
  assert.equal(reg.unattributed, 4);
});

test("without an id and nothing running: dropped and counted", () => {
  const reg = prompts({ Q: "queued" });
  assert.equal(resolve(reg, null, "1"), null);
  assert.equal(soleRunning(reg), null);
  assert.equal(reg.unattributed, 2);
  assert.equal(reg.records.size, 1, "nothing was created");
});
