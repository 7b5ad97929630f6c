// Unit tests for web/hooks/away_toast.js, the thin wiring of "finished while away": which toast
// it uses (the frontend's own when it takes a button), when it asks for the desktop-notification
// permission, and what it shows for a notice. The frontend, the page and the browser's
// Notification API are small stand-ins here; the browser test (tests/browser/test_away_toast.py)
// runs the real ones.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  desktopSettingChanged,
  installAwayToasts,
  SHOW_LABEL,
  toastSurface,
} from "../../web/hooks/away_toast.js";
import { createShowScope } from "../../web/state/show_scope.js";
import { ev, storeWith } from "./state_events.mjs";

const ME = "c1";

/** The newest frontend's toast manager: per-kind methods taking {action, duration}. */
function stockToasts() {
  const shown = [];
  const dismissed = [];
  const add = (kind) => (title, options) => {
    shown.push({ kind, title, ...options });
    return `toast-${shown.length}`;
  };
  return {
    shown,
    dismissed,
    manager: {
      add: () => assert.fail("the per-kind methods carry the button"),
      success: add("success"),
      error: add("error"),
      dismiss: (id) => dismissed.push(id),
    },
  };
}

/** Notification as the browser has it: a permission, a static request, instances. */
function notificationApi(permission, answer = permission) {
  const made = [];
  class FakeNotification {
    static permission = permission;
    static asked = 0;
    static requestPermission() {
      FakeNotification.asked += 1;
      return Promise.resolve(answer);
    }
    constructor(title, options) {
      this.title = title;
      this.options = options;
      this.closed = false;
      made.push(this);
    }
    close() {
      this.closed = true;
    }
  }
  return { FakeNotification, made };
}

test("the newest frontend's toast carries the button; the click closes it and acts", () => {
  const { shown, dismissed, manager } = stockToasts();
  const surface = toastSurface({ app: { extensionManager: { toast: manager } }, doc: null });
  assert.equal(surface.kind, "stock");
  let clicked = 0;
  const action = { label: SHOW_LABEL, onClick: () => (clicked += 1) };
  surface.show({ kind: "error", title: "B failed: boom", life: 15_000, action });
  assert.equal(shown[0].kind, "error");
  assert.equal(shown[0].title, "B failed: boom");
  assert.equal(shown[0].duration, 15_000);
  assert.equal(shown[0].action.label, SHOW_LABEL);
  shown[0].action.onClick();
  assert.equal(clicked, 1);
  assert.deepEqual(dismissed, ["toast-1"]);
});

test("a text-only toast API (the pinned frontend's PrimeVue one) gets our own toast", () => {
  const pinned = { add() {}, remove() {}, removeAll() {}, addAlert() {} };
  const app = { extensionManager: { toast: pinned } };
  assert.equal(toastSurface({ app, doc: null }).kind, "own");
  assert.equal(toastSurface({ app: {}, doc: null }).kind, "own");
});

test("permission is asked only when the user turns the setting on, with a gesture", async () => {
  const said = [];
  const notify = (message) => said.push(message.summary);
  const ask = (permission, options = {}) => {
    const { value = true, active = true, answer } = options;
    const old = "old" in options ? options.old : false; // undefined is a value here
    const { FakeNotification } = notificationApi(permission, answer);
    const navigator = { userActivation: { isActive: active } };
    const win = { Notification: FakeNotification, navigator };
    desktopSettingChanged({ value, old, win, notify });
    return FakeNotification;
  };
  assert.equal(ask("default", { old: undefined }).asked, 0); // the stored value at start-up
  assert.equal(ask("default", { value: false, old: true }).asked, 0); // turned off
  assert.equal(ask("default", { active: false }).asked, 0); // set by a script, not a person
  assert.equal(ask("granted").asked, 0); // nothing to ask
  assert.deepEqual(said, []);
  assert.equal(ask("default", { answer: "granted" }).asked, 1);
  await Promise.resolve();
  assert.deepEqual(said, []);
  assert.equal(ask("default", { answer: "denied" }).asked, 1);
  await new Promise((done) => setImmediate(done));
  assert.deepEqual(said, ["Desktop notifications are blocked"]);
  assert.equal(ask("denied").asked, 0); // the browser would not ask again: say where to go
  desktopSettingChanged({ value: true, old: false, win: {}, notify });
  assert.deepEqual(said.slice(1), [
    "Desktop notifications are blocked",
    "No desktop notifications",
  ]);
});

/** The extension's pieces around a real store and scope, with the page as `page` says. */
function wired({ hidden = false, desktop = true, permission = "granted" }) {
  const open = ["wf-a", "wf-b"];
  const store = storeWith();
  const scope = createShowScope({ clientId: () => ME });
  const { shown, manager } = stockToasts();
  const { FakeNotification, made } = notificationApi(permission);
  const listeners = new Map();
  const api = {
    addEventListener: (type, fn) => listeners.set(type, fn),
    removeEventListener: (type) => listeners.delete(type),
  };
  const names = { "wf-a": "Landscape", "wf-b": "Portrait" };
  const switched = [];
  const tabs = {
    open: new Set(open),
    visibleId: () => "wf-b",
    find: (id) => (tabs.open.has(id) ? { id } : null),
    label: (id) => (tabs.open.has(id) ? names[id] : id.slice(0, 4)),
    show: async (id) => {
      switched.push(id);
      return tabs.open.has(id);
    },
  };
  let focused = 0;
  const win = { Notification: FakeNotification, focus: () => (focused += 1) };
  const said = [];
  const away = installAwayToasts({
    app: { extensionManager: { toast: manager } },
    api,
    store,
    scope,
    tabs,
    clientId: () => ME,
    desktopEnabled: () => desktop,
    notify: (message) => said.push(message),
    doc: { hidden },
    win,
  });
  const queue = (id, workflowId) => {
    const announced = ev.queued(id, workflowId);
    store.dispatch(announced);
    listeners.get("parallel.queued")({ detail: announced.data });
    store.dispatch(ev.start(id));
  };
  return { store, tabs, shown, made, switched, said, away, queue, focused: () => focused };
}

test("a prompt of a tab not on screen: a toast naming it, whose button switches", async () => {
  const page = wired({});
  page.queue("p1", "wf-a");
  page.queue("p2", "wf-b"); // on screen
  page.store.dispatch(ev.success("p1"));
  page.store.dispatch(ev.success("p2"));
  assert.deepEqual(
    page.shown.map(({ kind, title, duration }) => ({ kind, title, duration })),
    [{ kind: "success", title: "Landscape finished", duration: 15_000 }],
  );
  assert.deepEqual(page.made, []); // the page is visible: no desktop notification
  page.shown[0].action.onClick();
  await Promise.resolve();
  assert.deepEqual(page.switched, ["wf-a"]);
  assert.deepEqual(page.said, []);
});

test("a hidden page also notifies the desktop, for the tab on screen too; a click shows it", () => {
  const page = wired({ hidden: true });
  page.queue("p1", "wf-a");
  page.queue("p2", "wf-b");
  page.store.dispatch(ev.error("p1", "2", "boom"));
  page.store.dispatch(ev.success("p2"));
  assert.deepEqual(
    page.made.map((n) => [n.title, n.options.tag]),
    [
      ["Landscape failed: boom", "parallel-runs-p1"],
      ["Portrait finished", "parallel-runs-p2"],
    ],
  );
  assert.deepEqual(
    page.shown.map((t) => [t.title, t.duration]),
    [["Landscape failed: boom", Infinity]], // a failure stays until closed
  );
  page.made[0].onclick();
  assert.equal(page.focused(), 1);
  assert.equal(page.made[0].closed, true);
  assert.deepEqual(page.switched, ["wf-a"]);
});

test("no desktop notification without the setting or the permission", () => {
  for (const options of [{ desktop: false }, { permission: "default" }, { permission: "denied" }]) {
    const page = wired({ hidden: true, ...options });
    page.queue("p1", "wf-a");
    page.store.dispatch(ev.success("p1"));
    assert.deepEqual(page.made, []);
    assert.equal(page.shown.length, 1); // the toast still waits in the page
  }
});

test("a tab closed since it queued: named, no button; closed after the toast: said", async () => {
  const page = wired({});
  page.queue("p1", "wf-a");
  page.queue("p2", "wf-a");
  page.tabs.open.delete("wf-a");
  page.store.dispatch(ev.success("p1"));
  assert.equal(page.shown[0].title, "Landscape finished"); // the name it had when it queued
  assert.equal(page.shown[0].action, undefined);
  page.tabs.open.add("wf-a");
  page.store.dispatch(ev.success("p2"));
  page.tabs.open.delete("wf-a");
  page.shown[1].action.onClick();
  await new Promise((done) => setImmediate(done));
  assert.deepEqual(page.said.map((m) => m.detail), ["Landscape is no longer open in a tab."]);
});

test("stop() leaves the store and the queue events alone from then on", () => {
  const page = wired({});
  page.queue("p1", "wf-a");
  page.away.stop();
  page.store.dispatch(ev.success("p1"));
  assert.deepEqual(page.shown, []);
});
