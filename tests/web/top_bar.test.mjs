// Unit tests for the pure parts of web/views/top_bar.js: the top bar's figures for the
// workflow tab on screen, and how they go into the frontend's own text and bars.
import assert from "node:assert/strict";
import { test } from "node:test";

import { barStyle, tabFigures, withNumber } from "../../web/views/top_bar.js";

const meanRunning = (list) => {
  const running = list.filter((s) => s.status === "running");
  const sum = running.reduce((total, s) => total + s.fraction, 0);
  return { running: running.length, fraction: running.length ? sum / running.length : 0 };
};

const prompts = [
  { prompt_id: "a1", workflow_id: "A", status: "running", fraction: 0.25 },
  { prompt_id: "a2", workflow_id: "A", status: "queued", fraction: 0 },
  { prompt_id: "a3", workflow_id: "A", status: "success", fraction: 1 },
  { prompt_id: "b1", workflow_id: "B", status: "running", fraction: 0.8 },
  { prompt_id: "b2", workflow_id: "B", status: "running", fraction: 0.4 },
];

test("tabFigures counts the tab on screen only: in flight, running, waiting, progress", () => {
  assert.deepEqual(tabFigures(prompts, "A", meanRunning), {
    active: 2,
    running: 1,
    queued: 1,
    fraction: 0.25,
    percent: 25,
  });
  const b = tabFigures(prompts, "B", meanRunning);
  assert.equal(b.active, 2);
  assert.ok(Math.abs(b.fraction - 0.6) < 1e-9);
  assert.equal(b.percent, 60);
});

test("tabFigures: no tab on screen, or nothing of it running, is zero", () => {
  const zero = { active: 0, running: 0, queued: 0, fraction: 0, percent: 0 };
  assert.deepEqual(tabFigures(prompts, null, meanRunning), zero);
  assert.deepEqual(tabFigures(prompts, "C", meanRunning), zero);
  const waiting = tabFigures([prompts[1]], "A", meanRunning);
  assert.deepEqual(waiting, { ...zero, active: 1, queued: 1 });
});

test("withNumber keeps the frontend's words and number format", () => {
  assert.equal(withNumber("0 active", 2), "2 active");
  assert.equal(withNumber("0%", 46), "46%");
  assert.equal(withNumber("0 %", 46), "46 %");
  assert.equal(withNumber("%0", 7), "%7");
  assert.equal(withNumber("1,234 active", 3), "3 active");
  assert.equal(withNumber("active", 3), null); // no number to replace: leave it
  assert.equal(withNumber(null, 3), null);
});

test("barStyle follows how each frontend draws its bar", () => {
  assert.deepEqual(barStyle({ transform: "scaleX(0)" }, 0.35), ["transform", "scaleX(0.35)"]);
  assert.deepEqual(barStyle({ width: "0%" }, 0.354), ["width", "35%"]);
  assert.equal(barStyle({}, 0.5), null);
});
