// Unit tests for web/state/show_scope.js: whose prompts the panel, title, favicon and queue
// list show ("Show prompts from" setting).
import assert from "node:assert/strict";
import { test } from "node:test";

import { aggregateProgress } from "../../web/state/selectors.js";
import {
  createShowScope,
  jobInScope,
  normaliseFrom,
  originLabel,
  originOf,
  SHOW_FROM,
} from "../../web/state/show_scope.js";
import { ev, storeWith } from "./state_events.mjs";

const ME = "client-me";
const mine = { prompt_id: "A", client_id: ME };
const other = { prompt_id: "B", client_id: "client-other" };
const script = { prompt_id: "C", client_id: null };

test("originOf: this tab, another client, or a script the server listed without a client", () => {
  assert.equal(originOf(mine, ME), "tab");
  assert.equal(originOf(other, ME), "client");
  assert.equal(originOf(script, ME), "tab"); // events ComfyUI sent here: not known to be foreign
  assert.equal(originOf(script, ME, { listed: true }), "script");
  assert.equal(originLabel("client"), "another client");
  assert.equal(originLabel("script"), "script");
  assert.equal(originLabel("tab"), "");
});

test("an unknown setting value falls back to this tab only", () => {
  assert.equal(normaliseFrom("all"), SHOW_FROM.ALL);
  assert.equal(normaliseFrom("everyone"), SHOW_FROM.TAB);
  assert.equal(normaliseFrom(undefined), SHOW_FROM.TAB);
});

test("jobInScope keeps this tab's and unattributed jobs, or every job for 'all'", () => {
  const ctx = { from: "tab", clientId: ME };
  assert.deepEqual(
    [mine, other, script].filter((job) => jobInScope(job, ctx)).map((j) => j.prompt_id),
    ["A", "C"],
  );
  assert.equal([mine, other, script].filter((j) => jobInScope(j, { ...ctx, from: "all" })).length, 3);
});

test("shown() follows the setting and subscribers hear only real changes", () => {
  const scope = createShowScope({ clientId: () => ME });
  scope.noteListed([{ prompt_id: "C" }, { prompt_id: "A", client_id: ME }]);
  const heard = [];
  scope.subscribe((from) => heard.push(from));
  assert.deepEqual(scope.shown([mine, other, script]).map((p) => p.prompt_id), ["A"]);
  assert.equal(scope.origin(script), "script");
  assert.equal(scope.set("all"), true);
  assert.equal(scope.set("all"), false);
  assert.deepEqual(scope.shown([mine, other, script]).map((p) => p.prompt_id), ["A", "B", "C"]);
  scope.set("tab");
  assert.deepEqual(heard, ["all", "tab"]);
});

test("aggregateProgress over the shown prompts ignores the hidden ones", () => {
  const store = storeWith();
  store.dispatch(ev.queued("A", "wf-1", { node_ids: ["1", "2"], client_id: ME }));
  store.dispatch(ev.queued("B", "wf-2", { node_ids: ["1", "2"], client_id: "client-other" }));
  store.dispatch(ev.start("A"));
  store.dispatch(ev.start("B"));
  store.dispatch(ev.cached("B", ["1", "2"]));
  const scope = createShowScope({ clientId: () => ME });
  assert.deepEqual(aggregateProgress(store, scope.shown(store.all())), { running: 1, fraction: 0 });
  scope.set("all");
  assert.deepEqual(aggregateProgress(store, scope.shown(store.all())), { running: 2, fraction: 0.5 });
});
