// Parallel Runs: ComfyUI web extension entry. Thin wiring only: state logic lives in
// state/prompt_state.js (pure), each piece of frontend wiring in its own module.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { installCanvasScope } from "./hooks/canvas_scope.js";
import { createExecutorChoice } from "./views/executor_choice.js";
import { createExecutorHealth } from "./views/executor_health.js";
import { createServerSettings } from "./views/server_settings.js";
import { syncJobs } from "./hooks/jobs_sync.js";
import { createOffloadSettings } from "./views/offload_settings.js";
import { createPanel, createPreviewUrls } from "./views/panel.js";
import { createPanelHost } from "./views/panel_host.js";
import { stopPrompt } from "./hooks/prompt_actions.js";
import { createStops, installStopHook, STOP_ALL_COMMAND, toaster } from "./hooks/stop_hook.js";
import { DESKTOP_SETTING, desktopSettingChanged, installAwayToasts } from "./hooks/away_toast.js";
import { aggregateProgress, createStore } from "./state/prompt_state.js";
import { createShowScope, SHOW_FROM } from "./state/show_scope.js";
import { autoOptions, installQueueHook } from "./hooks/queue_hook.js";
import { installQueueScope } from "./hooks/queue_scope.js";
import { installStockLabels } from "./views/stock_labels.js";
import { installIndicators } from "./views/indicators.js";
import { createWorkflowTabs } from "./hooks/workflow_tabs.js";

/** Our own folder's URL, whatever the package folder under custom_nodes/ is called. */
export const BASE_URL = new URL(".", import.meta.url).href;
export const EXTENSION_NAME = "parallel.runs";
const PACKAGE_EVENTS = ["parallel.queued", "parallel.snapshot", "parallel.progress_text", "parallel.job"];
const SETTING_PANEL = "ParallelRuns.Panel.Enabled";
const SETTING_CAP = "ParallelRuns.History.Cap";
const SETTING_AUTO_ALLOWED = "ParallelRuns.Auto.Allowed";
const SETTING_AUTO_PAID_AFTER = "ParallelRuns.Auto.PaidAfter";
const SETTING_SHOW_FROM = "ParallelRuns.Show.From";
const EVERY_CLIENT_REFRESH_MS = 2000; // other clients' prompts send this tab no events

/** Ask the server which version and features are active (null when the route is missing). */
async function fetchHealth() {
  try {
    const response = await api.fetchApi("/parallel/health");
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/** A visible, testable sign that the extension is loaded and talks to its server side. */
function announce(health, runtime) {
  const root = document.documentElement;
  root.dataset.parallelRuns = health ? health.version : "unavailable";
  root.dataset.parallelRunsBase = BASE_URL;
  window.dispatchEvent(
    new CustomEvent("parallel.ready", { detail: { health, baseUrl: BASE_URL, runtime } }),
  );
}

function addStylesheet() {
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("parallel_runs.css", BASE_URL).href;
  document.head.append(link);
}

function setting(id, fallback) {
  const value = app.extensionManager?.setting?.get?.(id) ?? app.ui?.settings?.getSettingValue?.(id);
  return value ?? fallback;
}

/** Everything the extension runs, created once in setup() and handed to the settings. */
function start() {
  const previews = createPreviewUrls();
  const store = createStore({ cap: setting(SETTING_CAP, 50), onPreviewEvicted: previews.revoke });
  const tabs = createWorkflowTabs(app);
  const names = new Map();
  const emit = (type, detail) => api.dispatchCustomEvent(type, detail);
  for (const type of PACKAGE_EVENTS) {
    // Registering also makes `api` deliver server-sent JSON events of these names.
    api.addEventListener(type, (event) => store.dispatch({ type, data: event.detail }));
  }
  let choice = null; // the executor choice, built with the panel
  let indicators = null; // title, favicon and top bar: the top bar follows the tab on screen
  const onSwitch = () => {
    choice?.refresh();
    indicators?.refresh();
  };
  const canvas = installCanvasScope({ api, store, tabs, onSwitch });
  installQueueHook({
    api,
    names,
    visibleWorkflowId: tabs.visibleId,
    announce: (detail) => emit("parallel.queued", detail),
    forget: (id) => store.remove(id),
    autoOptions: () =>
      autoOptions(setting(SETTING_AUTO_ALLOWED, ""), setting(SETTING_AUTO_PAID_AFTER, 0)),
  });
  const clientId = () => api.clientId ?? api.initialClientId ?? null;
  const scope = createShowScope({ from: setting(SETTING_SHOW_FROM, SHOW_FROM.TAB), clientId });
  const resync = () =>
    syncJobs({
      api,
      store,
      scope,
      clientId: clientId(),
      dispatch: (d) => emit("parallel.snapshot", d),
    });
  api.addEventListener("reconnected", resync);
  const refresher = everyClientRefresh({ scope, resync });
  scope.subscribe(resync);
  const executors = new Map(); // offloaded prompt id -> executor, named in the stock lists
  const labels = installStockLabels({ doc: document, executors });
  installQueueScope({ api, scope, clientId, executors, onNoted: labels.refresh });
  const aggregate = aggregateProgress;
  indicators = installIndicators({ app, doc: document, store, scope, tabs, aggregate });
  const stop = (prompt) =>
    stopPrompt({ api, prompt, report: (detail) => emit("parallel.job", detail) });
  const stops = createStops({ store, tabs, clientId, stop, notify: toaster(app) });
  installStopHook({ app, stopVisible: stops.stopVisible });
  const desktopEnabled = () => setting(DESKTOP_SETTING, false) === true;
  const notify = toaster(app);
  installAwayToasts({ app, api, store, scope, tabs, clientId, desktopEnabled, notify });
  const host = createPanelHost({
    app,
    doc: document,
    build: () => {
      const settings = createOffloadSettings({
        api,
        onView: (view) => choice?.setDefaultEndpoint(view?.endpoint_id ?? null),
      });
      choice = createExecutorChoice({ tabs, runpodSection: settings.element });
      const health = createExecutorHealth({ api });
      const servers = createServerSettings({
        api,
        onServers: (names) => {
          choice.setServers(names);
          health.refresh();
        },
      });
      choice.element.append(health.element, servers.element);
      queueMicrotask(health.start);
      return createPanel({
        store,
        api,
        tabs,
        names,
        stop,
        stopAll: stops.stopAll,
        previews,
        scope,
        header: choice.element,
      });
    },
  });
  host.setEnabled(setting(SETTING_PANEL, true) !== false);
  return { store, tabs, canvas, scope, host, resync, stop, stops, refresher };
}

/** While every client's prompts are shown, ask the server for them every few seconds. */
function everyClientRefresh({ scope, resync }) {
  let timer = null;
  const apply = () => {
    clearInterval(timer);
    timer = scope.from === SHOW_FROM.ALL ? setInterval(resync, EVERY_CLIENT_REFRESH_MS) : null;
  };
  scope.subscribe(apply);
  apply();
  return { stop: () => clearInterval(timer) };
}

let runtime = null;

app.registerExtension({
  name: EXTENSION_NAME,
  commands: [
    {
      id: STOP_ALL_COMMAND,
      icon: "pi pi-stop-circle",
      label: "Stop all prompts in flight (Parallel Runs)",
      function: () => runtime?.stops.stopAll(),
    },
  ],
  settings: [
    {
      id: SETTING_PANEL,
      category: ["Parallel Runs", "Panel", "Enabled"],
      name: "Show the Parallel Runs panel (a sidebar tab listing every prompt)",
      type: "boolean",
      defaultValue: true,
      onChange: (value) => runtime?.host.setEnabled(value !== false),
    },
    {
      id: SETTING_AUTO_ALLOWED,
      category: ["Parallel Runs", "Auto", "Allowed"],
      name: "Executors Auto may use (comma-separated, e.g. local, comfyui:gpu2; empty: all)",
      type: "text",
      defaultValue: "",
    },
    {
      id: SETTING_AUTO_PAID_AFTER,
      category: ["Parallel Runs", "Auto", "PaidAfter"],
      name: "Auto uses RunPod only when the free executors would wait longer than (seconds; 0: never)",
      type: "number",
      defaultValue: 0,
      attrs: { min: 0, max: 86400, step: 10 },
    },
    {
      id: SETTING_SHOW_FROM,
      category: ["Parallel Runs", "Show", "From"],
      name: "Show prompts from (panel, title, favicon and queue list)",
      type: "combo",
      options: [
        { text: "This browser tab", value: SHOW_FROM.TAB },
        { text: "Every client of this server", value: SHOW_FROM.ALL },
      ],
      defaultValue: SHOW_FROM.TAB,
      onChange: (value) => runtime?.scope.set(value),
    },
    {
      id: DESKTOP_SETTING,
      category: ["Parallel Runs", "Notify", "Desktop"],
      name: "Desktop notification when a prompt finishes while this browser tab is hidden",
      tooltip: "Turning it on asks the browser for permission. In-page toasts need no setting.",
      type: "boolean",
      defaultValue: false,
      onChange: (value, old) => desktopSettingChanged({ value, old, notify: toaster(app) }),
    },
    {
      id: SETTING_CAP,
      category: ["Parallel Runs", "History", "Cap"],
      name: "Finished prompts kept in the panel",
      type: "number",
      defaultValue: 50,
      attrs: { min: 0, max: 1000, step: 1 },
      onChange: (value) => runtime?.store.setCap?.(Number(value)),
    },
  ],
  async setup() {
    addStylesheet();
    runtime = start();
    const health = await fetchHealth();
    await runtime.resync();
    announce(health, runtime);
  },
});
