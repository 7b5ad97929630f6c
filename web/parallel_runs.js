// Parallel Runs: ComfyUI web extension entry. Thin wiring only; state logic lives in pure modules.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

/** Our own folder's URL, whatever the package folder under custom_nodes/ is called. */
export const BASE_URL = new URL(".", import.meta.url).href;
export const EXTENSION_NAME = "parallel.runs";

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
function announce(health) {
  const root = document.documentElement;
  root.dataset.parallelRuns = health ? health.version : "unavailable";
  root.dataset.parallelRunsBase = BASE_URL;
  window.dispatchEvent(new CustomEvent("parallel.ready", { detail: { health, baseUrl: BASE_URL } }));
}

app.registerExtension({
  name: EXTENSION_NAME,
  async setup() {
    announce(await fetchHealth());
  },
});
