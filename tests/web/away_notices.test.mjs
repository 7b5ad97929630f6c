// Unit tests for web/state/away_notices.js: which finished prompts give a "finished while away"
// notice (a toast naming the workflow tab, a desktop notification while the page is hidden).
// The prompts come from a real store fed ComfyUI-shaped events; the tracker looks at the store
// after every change, as the page's wiring does.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  awayNotices,
  createAwayTracker,
  errorLine,
  noticeTitle,
} from "../../web/state/away_notices.js";
import { ev, storeWith } from "./state_events.mjs";

const ME = "c1"; // ev.queued's client id
const TAB_A = "wf-a";
const TAB_B = "wf-b";

/** A store watched like the page does: `screen` says what is on screen at each change. */
function watched(screen = {}) {
  const store = storeWith();
  const tracker = createAwayTracker();
  const view = { visibleWorkflowId: TAB_B, pageHidden: false, clientId: ME, ...screen };
  const notices = [];
  store.subscribe((s) => notices.push(...tracker.next(s.all(), view)));
  return { store, view, notices };
}

function queuedAndRun(store, id, workflowId, extra = {}) {
  store.dispatch(ev.queued(id, workflowId, extra));
  store.dispatch(ev.start(id));
  store.dispatch(ev.executing(id, "2"));
}

test("a prompt of a workflow tab not on screen gives one toast when it succeeds", () => {
  const { store, notices } = watched();
  queuedAndRun(store, "p1", TAB_A);
  assert.deepEqual(notices, []); // running: nothing yet
  store.dispatch(ev.success("p1"));
  store.dispatch({ type: "executing", data: { node: null, prompt_id: "p1" } });
  assert.deepEqual(notices, [
    {
      prompt_id: "p1",
      workflow_id: TAB_A,
      outcome: "success",
      message: null,
      toast: true,
      desktop: false,
    },
  ]);
});

test("the tab on screen gives none while the page is visible; a desktop one while it is hidden", () => {
  const shown = watched({ visibleWorkflowId: TAB_A });
  queuedAndRun(shown.store, "p1", TAB_A);
  shown.store.dispatch(ev.success("p1"));
  assert.deepEqual(shown.notices, []);

  const hidden = watched({ visibleWorkflowId: TAB_A, pageHidden: true });
  queuedAndRun(hidden.store, "p1", TAB_A);
  queuedAndRun(hidden.store, "p2", TAB_B);
  hidden.store.dispatch(ev.success("p1"));
  hidden.store.dispatch(ev.success("p2"));
  assert.deepEqual(
    hidden.notices.map(({ prompt_id, toast, desktop }) => ({ prompt_id, toast, desktop })),
    [
      { prompt_id: "p1", toast: false, desktop: true }, // on screen in a hidden page
      { prompt_id: "p2", toast: true, desktop: true },
    ],
  );
});

test("what is on screen is read when the prompt finishes, not when it was queued", () => {
  const { store, view, notices } = watched({ visibleWorkflowId: TAB_A });
  queuedAndRun(store, "p1", TAB_A);
  view.visibleWorkflowId = TAB_B; // the user switched tabs while it ran
  store.dispatch(ev.success("p1"));
  assert.equal(notices.length, 1);
  assert.equal(notices[0].toast, true);
});

test("a failure names its error's first line; an interrupt gives no notice", () => {
  const { store, notices } = watched();
  queuedAndRun(store, "bad", TAB_A);
  store.dispatch(ev.error("bad", "2", "Padding size should be less than the input\nat line 3"));
  queuedAndRun(store, "stopped", TAB_A);
  store.dispatch(ev.interrupted("stopped", "2"));
  assert.deepEqual(
    notices.map(({ prompt_id, outcome, message }) => ({ prompt_id, outcome, message })),
    [{ prompt_id: "bad", outcome: "error", message: "Padding size should be less than the input" }],
  );
});

test("prompts finished before the page saw them (the load's snapshot) never give a notice", () => {
  const { store, notices } = watched();
  const job = (prompt_id, status) => ({
    prompt_id,
    status,
    workflow_id: TAB_A,
    client_id: ME,
    executor: "local",
  });
  store.dispatch({
    type: "parallel.snapshot",
    data: { jobs: [job("old-ok", "success"), job("old-bad", "error"), job("live", "running")] },
  });
  assert.deepEqual(notices, []);
  store.dispatch(ev.success("live")); // still running at load: its finish is seen here
  assert.deepEqual(
    notices.map((n) => n.prompt_id),
    ["live"],
  );
});

test("only this browser tab's prompts in the shown scope count", () => {
  const inScope = (prompt) => prompt.prompt_id !== "hidden-by-scope";
  const { store, notices } = watched({ inScope });
  queuedAndRun(store, "other-client", TAB_A, { client_id: "c2" });
  queuedAndRun(store, "script", TAB_A, { client_id: null });
  queuedAndRun(store, "hidden-by-scope", TAB_A);
  queuedAndRun(store, "no-tab", null);
  queuedAndRun(store, "mine", TAB_A);
  for (const id of ["other-client", "script", "hidden-by-scope", "no-tab", "mine"]) {
    store.dispatch(ev.success(id));
  }
  assert.deepEqual(
    notices.map((n) => n.prompt_id),
    ["mine"],
  );
  const unknownClient = watched({ clientId: null }); // before the socket gave an id
  queuedAndRun(unknownClient.store, "p1", TAB_A);
  unknownClient.store.dispatch(ev.success("p1"));
  assert.deepEqual(unknownClient.notices, []);
});

test("one notice per prompt: repeated outcomes, later events, a dismissal and a return", () => {
  const { store, view, notices } = watched();
  const tracker = createAwayTracker();
  queuedAndRun(store, "p1", TAB_A);
  tracker.next(store.all(), view);
  store.dispatch(ev.success("p1"));
  store.dispatch(ev.success("p1"));
  store.dispatch(ev.error("p1", "2", "late")); // terminal is sticky
  store.dispatch(ev.job({ prompt_id: "p1", status: "success", outputs: { 4: { images: [] } } }));
  assert.equal(notices.length, 1);
  // the tracker itself: the prompt left and came back running (say, a re-listed job)
  assert.equal(tracker.next(store.all(), view).length, 1);
  tracker.next([], view);
  tracker.next([{ ...store.get("p1"), status: "running" }], view);
  assert.deepEqual(tracker.next([store.get("p1")], view), []);
});

test("an outcome only inferred (executing null alone) waits for the explicit one", () => {
  const { store, notices } = watched();
  queuedAndRun(store, "p1", TAB_A);
  store.dispatch({ type: "executing", data: { node: null, prompt_id: "p1" } });
  assert.equal(store.get("p1").status, "success");
  assert.deepEqual(notices, []);
  store.dispatch(ev.error("p1", "2", "it failed after all"));
  assert.deepEqual(
    notices.map(({ outcome, message }) => ({ outcome, message })),
    [{ outcome: "error", message: "it failed after all" }],
  );
});

test("awayNotices is pure: it leaves `seen` alone and keeps only the prompts given", () => {
  const seen = new Map([
    ["p1", "open"],
    ["gone", "open"],
  ]);
  const view = { visibleWorkflowId: TAB_B, clientId: ME };
  const prompt = { prompt_id: "p1", status: "success", client_id: ME, workflow_id: TAB_A };
  const pass = awayNotices(seen, [prompt], view);
  assert.deepEqual([...seen], [
    ["p1", "open"],
    ["gone", "open"],
  ]);
  assert.deepEqual([...pass.seen], [["p1", "done"]]);
  assert.equal(pass.notices.length, 1);
  assert.deepEqual(awayNotices(null, [prompt], view).notices, []); // first look: already done
});

test("the words: '<name> finished' and '<name> failed: <message>', shortened", () => {
  const ok = { outcome: "success", message: null };
  assert.equal(noticeTitle(ok, "portrait.json"), "portrait.json finished");
  assert.equal(noticeTitle({ outcome: "error", message: "boom" }, "B"), "B failed: boom");
  assert.equal(noticeTitle({ outcome: "error", message: "" }, "B"), "B failed");
  assert.equal(noticeTitle(ok, ""), "A workflow finished");
  const long = errorLine({ message: "x".repeat(500) });
  assert.equal(long.length, 160);
  assert.ok(long.endsWith("…"));
  assert.equal(errorLine("  plain string  "), "plain string");
  assert.equal(errorLine(null), "");
});
