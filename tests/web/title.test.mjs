// Unit tests for web/views/title.js: one indicator in the browser tab title, ours, in place of
// the frontend's own percentages (useBrowserTabTitle, the same on 1.32 and 1.58).
import assert from "node:assert/strict";
import { test } from "node:test";

import { stockTitleRest, titleFor, workflowTitleOf } from "../../web/views/title.js";

const two = { running: 2, fraction: 0.456 };
const one = { running: 1, fraction: 0.5 };
const idle = { running: 0, fraction: 0 };

test("ours replaces the frontend's own progress next to it", () => {
  // what the page showed before: "[1 running +1 queued 50%] [0%] *workflow - ComfyUI"
  const before = "[1 running +1 queued 50%] [0%] *workflow - ComfyUI";
  assert.equal(titleFor(before, one, 1), "[1 running +1 queued 50%] *workflow - ComfyUI");
  assert.equal(titleFor("[0%] *workflow - ComfyUI", two), "[2 running 46%] *workflow - ComfyUI");
  assert.equal(titleFor("[12%]workflow - ComfyUI", two), "[2 running 46%] workflow - ComfyUI");
  assert.equal(titleFor("[0%]ComfyUI", one), "[1 running 50%] ComfyUI");
});

test("the frontend's running-node title gives way to the workflow's name when known", () => {
  const node = "[0%][15%] ParallelRunsSlowPassthrough";
  assert.equal(titleFor(node, one, 0, "*tab-B - ComfyUI"), "[1 running 50%] *tab-B - ComfyUI");
  assert.equal(titleFor(node, one), "[1 running 50%] ParallelRunsSlowPassthrough");
  // idle in its own eyes, yet painting a node of the tab on screen
  assert.equal(titleFor("[35%] KSampler", one, 0, "wf - ComfyUI"), "[1 running 50%] wf - ComfyUI");
  const nodes = "[40%][2 nodes running]";
  assert.equal(titleFor(nodes, one, 0, "wf - ComfyUI"), "[1 running 50%] wf - ComfyUI");
  assert.equal(titleFor(nodes, one), "[1 running 50%] ComfyUI");
});

test("exactly one bracketed indicator, whatever was there", () => {
  for (const base of [
    "*wf - ComfyUI",
    "[0%] *wf - ComfyUI",
    "[1 running 10%] [0%] *wf - ComfyUI",
    "[3 running +2 queued 99%] [0%][50%] Node",
  ]) {
    const title = titleFor(base, two, 0, "*wf - ComfyUI");
    assert.equal(title, "[2 running 46%] *wf - ComfyUI", base);
    assert.equal(title.match(/\[[^\]]*%\]/g).length, 1);
  }
});

test("idle: the frontend's title is left as it is, its own percentage included", () => {
  assert.equal(titleFor("*wf - ComfyUI", idle), "*wf - ComfyUI");
  assert.equal(titleFor("[0%] *wf - ComfyUI", idle), "[0%] *wf - ComfyUI");
  assert.equal(titleFor("[2 running 46%] [0%][3%] Node", idle), "[0%][3%] Node");
  const waiting = "[0 running +1 queued 0%] wf - ComfyUI";
  assert.equal(titleFor(waiting, idle, 1), waiting);
});

test("a saved workflow whose name starts with brackets keeps them", () => {
  assert.equal(titleFor("[v2] test - ComfyUI", one), "[1 running 50%] [v2] test - ComfyUI");
  const rest = stockTitleRest("[0%][v2] test - ComfyUI");
  assert.deepEqual(rest, { rest: "[v2] test - ComfyUI", node: false });
  // "[50%] x" is what the frontend writes for a running node: the known workflow name wins
  const named = workflowTitleOf({ filename: "[50%] x", isPersisted: true });
  assert.equal(titleFor("[50%] x - ComfyUI", one, 0, named), "[1 running 50%] [50%] x - ComfyUI");
});

test("stockTitleRest separates the frontend's progress from its words", () => {
  assert.deepEqual(stockTitleRest("[0%] *wf - ComfyUI"), { rest: "*wf - ComfyUI", node: false });
  assert.deepEqual(stockTitleRest("[0%][15%] Slow"), { rest: "Slow", node: true });
  assert.deepEqual(stockTitleRest("[7%][3 nodes running]"), { rest: "", node: true });
  assert.deepEqual(stockTitleRest("ComfyUI"), { rest: "ComfyUI", node: false });
});

test("workflowTitleOf follows the frontend's unsaved marker and default title", () => {
  const saved = { filename: "wf", isPersisted: true, isModified: false };
  assert.equal(workflowTitleOf(saved), "wf - ComfyUI");
  assert.equal(workflowTitleOf({ ...saved, isModified: true }), "*wf - ComfyUI");
  assert.equal(workflowTitleOf({ filename: "new", isPersisted: false }), "*new - ComfyUI");
  assert.equal(workflowTitleOf({ ...saved, isModified: true }, { autoSave: true }), "wf - ComfyUI");
  assert.equal(workflowTitleOf(saved, { newMenu: false }), "ComfyUI");
  assert.equal(workflowTitleOf(null), "ComfyUI");
});
