// Parallel Runs: per-workflow executor (Local / a ComfyUI server / RunPod endpoint), kept in the
// workflow's own extra data as `extra.parallel_runs = {executor: "local" | "comfyui:<server>" |
// "runpod" | "runpod:<endpoint>"}` so it travels with the workflow file. Never a key: the RunPod
// API key and the servers' auth headers stay on the server.

import { el } from "./dom.js";
import { executorChoice } from "../hooks/queue_hook.js";

/** The endpoint field's placeholder: the server's default endpoint when it has one (pure). */
export function endpointPlaceholder(defaultEndpoint) {
  return defaultEndpoint ? `default: ${defaultEndpoint}` : "endpoint id (none set)";
}

/** The select's value for a choice: the kind, or the server for a ComfyUI one (pure). */
export function selectValue(choice) {
  return choice.kind === "comfyui" ? choice.id : choice.kind;
}

/**
 * A small form bound to the visible workflow; `refresh()` re-reads it after a tab switch.
 * `runpodSection` (optional element, the RunPod settings) is shown while RunPod is chosen.
 */
export function createExecutorChoice({ tabs, runpodSection = null }) {
  const select = el("select", { class: "parallel-runs-executor", title: "Where this workflow runs" }, [
    el("option", { value: "local", text: "Local" }),
    el("option", { value: "auto", text: "Auto (where it starts soonest)" }),
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
    extra.parallel_runs = { executor: select.value === "runpod" ? runpod : select.value };
    tabs.markChanged();
    refresh();
  }

  function refresh() {
    const choice = read();
    const value = selectValue(choice);
    if (![...select.options].some((option) => option.value === value)) {
      // a server this ComfyUI does not know (yet): shown, so the choice is not lost silently
      select.append(el("option", { value, text: `${choice.name} (not configured)` }));
    }
    select.value = value;
    if (document.activeElement !== endpoint) endpoint.value = choice.name ?? "";
    endpoint.hidden = choice.kind !== "runpod";
    if (runpodSection) runpodSection.hidden = choice.kind !== "runpod";
    root.dataset.executor = choice.kind;
  }

  /** The named ComfyUI servers this ComfyUI can run prompts on (from the server). */
  function setServers(names) {
    for (const option of [...select.options]) {
      if (option.value.startsWith("comfyui:")) option.remove();
    }
    const runpodOption = select.querySelector('option[value="runpod"]');
    for (const name of names) {
      const option = el("option", { value: `comfyui:${name}`, text: `ComfyUI: ${name}` });
      select.insertBefore(option, runpodOption);
    }
    refresh();
  }

  /** The server's default endpoint changed (from the RunPod settings). */
  function setDefaultEndpoint(id) {
    endpoint.placeholder = endpointPlaceholder(id);
  }

  select.addEventListener("change", write);
  endpoint.addEventListener("change", write);
  refresh();
  return { element: root, refresh, read, setDefaultEndpoint, setServers };
}
