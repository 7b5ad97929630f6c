// Parallel Runs: "finished while away". When one of this tab's prompts finishes or fails while
// its workflow tab is not on screen, a toast names the workflow and offers to switch to it;
// while the browser tab itself is hidden, a desktop notification too, if the user allowed them.
// Which prompts deserve a notice is decided in state/away_notices.js; this is the wiring: the
// store's changes in, the frontend's toast (or ours) and the Notification API out.
//
// Toasts with a button: the newest frontend's toast API takes `action: {label, onClick}` (its
// `success`/`error` methods, next to the older `add`); the pinned 1.32 one is PrimeVue's,
// text only, so there views/toast.js draws our own in the same corner.

import { createAwayTracker, noticeTitle } from "../state/away_notices.js";
import { createToastStack } from "../views/toast.js";

export const DESKTOP_SETTING = "ParallelRuns.Notify.Desktop";
export const SHOW_LABEL = "Show workflow";
/** How long a toast stays: a finish long enough to read and reach the button; a failure until
 * the user closes it (a prompt that failed unseen should not slip by). */
export const TOAST_LIFE_MS = Object.freeze({ success: 15_000, error: Number.POSITIVE_INFINITY });
const NAMES_KEPT = 200;

/**
 * The toast to use: `{kind: "stock" | "own", show({kind, title, action, life}) -> {dismiss}}`.
 * "stock" when the frontend's toast API has the per-kind methods that take an action
 * (frontend 1.58: extensionManager.toast.success(title, {action, duration}) returns an id).
 */
export function toastSurface({ app, doc = document }) {
  const stock = app.extensionManager?.toast;
  if (typeof stock?.success === "function" && typeof stock?.error === "function") {
    return {
      kind: "stock",
      show({ kind, title, action, life }) {
        let id = null;
        const dismiss = () => {
          if (id !== null) stock.dismiss?.(id);
        };
        const options = { duration: life };
        if (action) {
          // the stock button only calls onClick: the toast is ours to close
          options.action = {
            label: action.label,
            onClick: () => {
              dismiss();
              action.onClick();
            },
          };
        }
        id = (kind === "error" ? stock.error : stock.success)(title, options) ?? null;
        return { dismiss };
      },
    };
  }
  const own = createToastStack({ doc });
  return { kind: "own", show: own.show };
}

/**
 * The desktop-notification setting changed. Permission is asked only here, on a change the
 * user made (the settings dialog's toggle is a user gesture), never when the frontend hands
 * the stored value over at start-up (`old` undefined) and never without a gesture. Not
 * awaited: the newest frontend saves a setting only after its onChange settles, and a
 * permission prompt may stay open a long time.
 */
export function desktopSettingChanged({ value, old, win = window, notify }) {
  if (value !== true || old === undefined) return;
  const Notice = win.Notification;
  if (typeof Notice !== "function") {
    notify({
      severity: "warn",
      summary: "No desktop notifications",
      detail: "This browser does not offer desktop notifications to this page.",
    });
    return;
  }
  const blocked = () =>
    notify({
      severity: "warn",
      summary: "Desktop notifications are blocked",
      detail: "Allow notifications for this site in the browser's settings to get them.",
    });
  if (Notice.permission === "denied") {
    blocked();
    return;
  }
  if (Notice.permission === "granted") return;
  if (win.navigator?.userActivation?.isActive === false) return; // not from a gesture
  Promise.resolve(Notice.requestPermission())
    .then((answer) => {
      if (answer !== "granted") blocked();
    })
    .catch(() => blocked());
}

/**
 * Watch the store and tell the user about prompts that finished while away. `desktopEnabled()`
 * reads the setting; `notify` is the plain toaster for the few messages without a button.
 * Returns `{surface, check, stop}`: the toast in use ("stock" or "own"), one look now (as
 * after a store change), and the undo.
 */
export function installAwayToasts({
  app,
  api,
  store,
  scope,
  tabs,
  clientId,
  desktopEnabled,
  notify,
  doc = document,
  win = window,
}) {
  const tracker = createAwayTracker();
  const surface = toastSurface({ app, doc });
  const names = new Map(); // workflow id -> its tab's name when it queued (the tab may close)

  const onQueued = (event) => {
    const id = event.detail?.workflow_id;
    if (!id) return;
    names.delete(id);
    names.set(id, tabs.label(id));
    if (names.size > NAMES_KEPT) names.delete(names.keys().next().value);
  };
  api.addEventListener("parallel.queued", onQueued);

  const nameOf = (id) => (tabs.find(id) ? tabs.label(id) : (names.get(id) ?? tabs.label(id)));

  async function switchTo(workflowId, name) {
    const shown = await tabs.show(workflowId).catch(() => false);
    if (!shown) {
      notify({
        severity: "info",
        summary: "Workflow not open",
        detail: `${name} is no longer open in a tab.`,
      });
    }
  }

  function tell(notice) {
    const name = nameOf(notice.workflow_id);
    const title = noticeTitle(notice, name);
    const open = () => switchTo(notice.workflow_id, name);
    if (notice.toast) {
      const canSwitch = tabs.find(notice.workflow_id) !== null;
      const kind = notice.outcome === "error" ? "error" : "success";
      surface.show({
        kind,
        title,
        action: canSwitch ? { label: SHOW_LABEL, onClick: open } : null,
        life: TOAST_LIFE_MS[kind],
      });
    }
    if (notice.desktop && desktopEnabled()) desktop(title, notice, open);
  }

  function desktop(title, notice, open) {
    const Notice = win.Notification;
    if (typeof Notice !== "function" || Notice.permission !== "granted") return;
    try {
      const shown = new Notice(title, {
        body: "Parallel Runs: click to show its workflow tab.",
        tag: `parallel-runs-${notice.prompt_id}`,
      });
      shown.onclick = () => {
        win.focus();
        shown.close();
        open();
      };
    } catch {
      // some browsers only allow notifications from a service worker: the toast stays
    }
  }

  function check() {
    const prompts = store.all();
    const inScope = new Set(scope.shown(prompts));
    const view = {
      visibleWorkflowId: tabs.visibleId() ?? null,
      pageHidden: doc.hidden === true,
      clientId: clientId(),
      inScope: (prompt) => inScope.has(prompt),
    };
    for (const notice of tracker.next(prompts, view)) tell(notice);
  }

  const unsubscribe = store.subscribe(check);
  check(); // what is in the store now is the baseline: already finished ones stay quiet
  return {
    surface: surface.kind,
    check,
    stop() {
      unsubscribe();
      api.removeEventListener?.("parallel.queued", onQueued);
    },
  };
}
