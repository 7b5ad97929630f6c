// Parallel Runs: the panel listing every prompt (running first), each with its own progress
// bar, current node, executor, elapsed time, outputs, error and a stop button.
// Rows are keyed by prompt id and rebuilt only when that prompt changed (its `rev`).

import { el } from "./dom.js";
import { TERMINAL_STATUSES, nodeProgress, promptProgress } from "../state/prompt_state.js";
import { originLabel } from "../state/show_scope.js";

const TERMINAL = new Set(TERMINAL_STATUSES);
const MAX_THUMBS = 4;

/** "4.2 s", "3 min 05 s". */
export function formatElapsed(ms) {
  if (!(ms >= 0)) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
}

/** Images an `executed` output lists (SaveImage/PreviewImage shape). */
export function outputImages(outputs) {
  const images = [];
  for (const [node, output] of Object.entries(outputs ?? {})) {
    for (const image of output?.images ?? []) {
      if (image?.filename) images.push({ node, ...image });
    }
  }
  return images;
}

/**
 * createPanel({store, api, tabs, names, stop, stopAll, header, now}) -> {element, render, destroy}.
 * `names` maps prompt id -> {nodeId: name}; `stop(prompt)` returns {ok, message};
 * `stopAll()` stops every prompt in flight (the header's Stop all button);
 * `previews` is createPreviewUrls(); `header` is an extra header element (executor choice);
 * `scope` (createShowScope) says whose prompts to list and marks those of other clients.
 */
export function createPanel({
  store,
  api,
  tabs,
  names,
  stop,
  stopAll,
  previews,
  header,
  scope,
  now = () => Date.now(),
}) {
  const root = el("div", { class: "parallel-runs-panel" });
  const head = el("div", { class: "parallel-runs-head" });
  const summary = el("span", { class: "parallel-runs-summary" });
  const clear = el("button", { class: "parallel-runs-clear", text: "Clear finished" });
  clear.title = "Remove finished prompts from this list";
  clear.addEventListener("click", () => {
    for (const s of store.all()) if (TERMINAL.has(s.status)) store.remove(s.prompt_id);
  });
  const halt = el("button", { class: "parallel-runs-stop-all", text: "Stop all" });
  halt.title = "Stop every prompt in flight from this browser tab, wherever it runs";
  halt.addEventListener("click", async () => {
    halt.disabled = true;
    try {
      await stopAll?.();
    } finally {
      render();
    }
  });
  head.append(summary, halt, clear);
  if (header) head.append(header);
  const list = el("div", { class: "parallel-runs-list" });
  const empty = el("div", { class: "parallel-runs-empty", text: "No prompts yet. Queue one and it shows here." });
  root.append(head, list, empty);
  const rows = new Map();
  let frame = 0;

  function nodeName(s, nodeId) {
    const visible = s.workflow_id && s.workflow_id === tabs.visibleId() ? tabs.nodeTitle(nodeId) : null;
    return names.get(s.prompt_id)?.[nodeId] ?? visible ?? `#${nodeId}`;
  }

  function viewUrl(image) {
    const query = new URLSearchParams({
      filename: image.filename,
      type: image.type ?? "output",
      subfolder: image.subfolder ?? "",
    });
    return api.apiURL(`/view?${query}`);
  }

  function buildRow(s) {
    const row = el("div", { class: "parallel-runs-row" });
    row.dataset.promptId = s.prompt_id;
    row.dataset.status = s.status;
    row.dataset.workflowId = s.workflow_id ?? "";
    row.dataset.executor = s.executor ?? "";
    const top = el("div", { class: "parallel-runs-row-top" });
    top.append(
      el("span", { class: `parallel-runs-status parallel-runs-status-${s.status}`, text: s.status }),
      el("span", { class: "parallel-runs-workflow", text: tabs.label(s.workflow_id) || "(other client)" }),
      el("span", { class: "parallel-runs-executor-label", text: s.executor ?? "local" }),
    );
    const origin = originLabel(scope.origin(s));
    if (origin) top.append(el("span", { class: "parallel-runs-origin", text: origin }));
    row.dataset.origin = scope.origin(s);
    top.append(
      el("span", { class: "parallel-runs-elapsed" }),
    );
    if (!TERMINAL.has(s.status)) {
      const button = el("button", { class: "parallel-runs-stop", text: "Stop" });
      button.title = `Stop prompt ${s.prompt_id}`;
      button.addEventListener("click", async () => {
        button.disabled = true;
        const result = await stop(s).catch((error) => ({ ok: false, message: String(error) }));
        button.title = result.message;
        if (!result.ok) button.disabled = false;
      });
      top.append(button);
    }
    const progress = promptProgress(store, s.prompt_id);
    const bar = el("div", { class: "parallel-runs-bar" });
    const fill = el("div", { class: "parallel-runs-bar-fill" });
    fill.style.width = `${Math.round(progress.fraction * 100)}%`;
    bar.dataset.fraction = progress.fraction.toFixed(3);
    bar.append(fill);
    row.append(top, bar);
    if (s.current_node !== null && s.current_node !== undefined && !TERMINAL.has(s.status)) {
      const node = nodeProgress(store, s.prompt_id, s.current_node);
      const steps = node && node.max > 1 ? ` ${node.value}/${node.max}` : "";
      const current = el("div", { class: "parallel-runs-node", text: `${nodeName(s, s.current_node)}${steps}` });
      current.dataset.node = s.current_node;
      row.append(current);
    }
    const texts = Object.entries(s.progress_text ?? {});
    if (texts.length) {
      const [nodeId, text] = texts[texts.length - 1];
      const line = el("div", { class: "parallel-runs-text", text: text });
      line.dataset.node = nodeId;
      row.append(line);
    }
    const thumbs = el("div", { class: "parallel-runs-thumbs" });
    for (const image of outputImages(s.outputs).slice(-MAX_THUMBS)) {
      const img = el("img", { class: "parallel-runs-thumb" });
      img.src = viewUrl(image);
      img.alt = image.filename;
      img.dataset.node = image.node;
      img.dataset.filename = image.filename;
      thumbs.append(img);
    }
    const preview = !TERMINAL.has(s.status) ? previews.url(s.preview) : null;
    if (preview) {
      const img = el("img", { class: "parallel-runs-thumb parallel-runs-preview" });
      img.src = preview;
      thumbs.append(img);
    }
    if (thumbs.childElementCount) row.append(thumbs);
    if (s.warning && !TERMINAL.has(s.status)) {
      row.append(el("div", { class: "parallel-runs-warning", text: s.warning }));
    }
    if (s.error) {
      const where = s.error.node_type ? ` (${s.error.node_type} #${s.error.node_id})` : "";
      row.append(el("div", { class: "parallel-runs-error", text: `${s.error.message || "error"}${where}` }));
    }
    row._rev = s.rev;
    updateElapsed(row, s);
    return row;
  }

  function updateElapsed(row, s) {
    const start = s.started_at ?? s.queued_at;
    const end = s.finished_at ?? now();
    const span = row.querySelector(".parallel-runs-elapsed");
    if (span) span.textContent = start ? formatElapsed(end - start) : "";
  }

  function render() {
    frame = 0;
    const prompts = scope.shown(store.all());
    const seen = new Set();
    let before = list.firstChild;
    for (const s of prompts) {
      seen.add(s.prompt_id);
      let row = rows.get(s.prompt_id);
      if (!row || row._rev !== s.rev) {
        const fresh = buildRow(s);
        if (row) {
          if (row === before) before = fresh; // keep the insertion point inside the list
          row.replaceWith(fresh);
        }
        row = fresh;
        rows.set(s.prompt_id, row);
      } else {
        updateElapsed(row, s);
      }
      if (row !== before) list.insertBefore(row, before);
      before = row.nextSibling;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.remove();
        rows.delete(id);
      }
    }
    const running = prompts.filter((s) => s.status === "running").length;
    const queued = prompts.filter((s) => s.status === "queued").length;
    summary.textContent = `${running} running, ${queued} queued`;
    halt.disabled = running + queued === 0;
    empty.hidden = prompts.length > 0;
  }

  const schedule = () => {
    frame ||= requestAnimationFrame(render);
  };
  const unsubscribe = store.subscribe(schedule);
  const unscope = scope.subscribe(schedule);
  const ticker = setInterval(() => {
    for (const s of store.all()) {
      const row = rows.get(s.prompt_id);
      if (row && !TERMINAL.has(s.status)) updateElapsed(row, s);
    }
  }, 1000);
  render();

  return {
    element: root,
    render,
    destroy() {
      unsubscribe();
      unscope();
      clearInterval(ticker);
      if (frame) cancelAnimationFrame(frame);
      root.remove();
    },
  };
}

/** Object URLs for preview Blobs, made once per Blob and revoked when the store drops it. */
export function createPreviewUrls() {
  const urls = new WeakMap();
  return {
    url(preview) {
      const blob = preview?.blob_or_url;
      if (!blob) return null;
      if (typeof blob === "string") return blob;
      if (!urls.has(blob)) urls.set(blob, URL.createObjectURL(blob));
      return urls.get(blob);
    },
    /** For createStore({onPreviewEvicted}). */
    revoke(preview) {
      const blob = preview?.blob_or_url;
      if (blob && typeof blob !== "string" && urls.has(blob)) {
        URL.revokeObjectURL(urls.get(blob));
        urls.delete(blob);
      }
    },
  };
}
