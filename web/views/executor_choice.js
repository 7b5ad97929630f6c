// Parallel Runs: per-workflow executor (Local / RunPod endpoint), kept in the workflow's own
// extra data as `extra.parallel_runs = {executor: "local" | "runpod" | "runpod:<endpoint>"}` so
// it travels with the workflow file. Never a key: the RunPod API key stays on the server.

import { el } from "./dom.js";
import { executorChoice } from "../hooks/queue_hook.js";

/** The endpoint field's placeholder: the server's default endpoint when it has one (pure). */
export function endpointPlaceholder(defaultEndpoint) {
  return defaultEndpoint ? `default: ${defaultEndpoint}` : "endpoint id (none set)";
}

/**
 * A small form bound to the visible workflow; `refresh()` re-reads it after a tab switch.
 * `runpodSection` (optional element, the RunPod settings) is shown while RunPod is chosen.
 */
export function createExecutorChoice({ tabs, runpodSection = null }) {
  const select = el("select", { class: "parallel-runs-executor", title: "Where this workflow runs" }, [
    el("option", { value: "local", text: "Local" }),
    el("option", { value: "runpod", text: "RunPod" }),
  ]);
  const endpoint = el("input", {
    class: "parallel-runs-endpoint",
    placeholder: endpointPlaceholder(null),
    title: "RunPod endpoint for this workflow (empty: the server's default)",
    spellcheck: "false",
    size: "14",
  });
  const line = el("div", { class: "parallel-runs-executor-line" }, [
    el("span", { text: "Run on" }),
    select,
    endpoint,
  ]);
  const root = el("div", { class: "parallel-runs-executor-choice" }, [line]);
  if (runpodSection) root.append(runpodSection);

  function read() {
    return executorChoice({ extra: tabs.extra() ?? {} });
  }

  function write() {
    const extra = tabs.extra();
    if (!extra) return;
    const id = endpoint.value.trim().replace(/[^A-Za-z0-9_-]/g, "");
    const runpod = id ? `runpod:${id}` : "runpod";
    extra.parallel_runs = { executor: select.value === "runpod" ? runpod : "local" };
    tabs.markChanged();
    refresh();
  }

  function refresh() {
    const choice = read();
    select.value = choice.kind;
    if (document.activeElement !== endpoint) endpoint.value = choice.name ?? "";
    endpoint.hidden = choice.kind !== "runpod";
    if (runpodSection) runpodSection.hidden = choice.kind !== "runpod";
    root.dataset.executor = choice.kind;
  }

  /** The server's default endpoint changed (from the RunPod settings). */
  function setDefaultEndpoint(id) {
    endpoint.placeholder = endpointPlaceholder(id);
  }

  select.addEventListener("change", write);
  endpoint.addEventListener("change", write);
  refresh();
  return { element: root, refresh, read, setDefaultEndpoint };
}
