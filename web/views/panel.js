// Parallel Runs: the panel listing every prompt (running first), each with its own progress
// bar, current node, executor, elapsed time, outputs, error and a stop button.
// Rows are keyed by prompt id and touched only when that prompt changed (its `rev`): a step
// updates the bar and texts in place, any other change rebuilds the row.

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

  /** The last progress text of a prompt, as [nodeId, text], or null. */
  function lastText(s) {
    const texts = Object.entries(s.progress_text ?? {});
    return texts.length ? texts[texts.length - 1] : null;
  }

  /** The images a row shows: the last outputs' /view URLs, then the preview while it runs. */
  function rowImages(s) {
    const images = outputImages(s.outputs)
      .slice(-MAX_THUMBS)
      .map((image) => ({ src: viewUrl(image), node: image.node, filename: image.filename }));
    const preview = !TERMINAL.has(s.status) ? previews.url(s.preview) : null;
    if (preview) images.push({ src: preview, preview: true });
    return images;
  }

  /**
   * Everything a row shows except what changes at every step (bar, node steps, progress text:
   * showProgress) and the elapsed time: a row whose shape is unchanged is updated in place,
   * any other change rebuilds it.
   */
  function rowShape(s, images) {
    const running = !TERMINAL.has(s.status);
    const hasNode = s.current_node !== null && s.current_node !== undefined && running;
    return JSON.stringify([
      s.status,
      s.workflow_id,
      tabs.label(s.workflow_id),
      s.executor,
      scope.origin(s),
      hasNode ? s.current_node : null,
      lastText(s)?.[0] ?? null,
      images.map((image) => [image.src, image.node, image.filename]),
      running ? s.warning : null,
      s.error ? [s.error.message, s.error.node_type, s.error.node_id] : null,
    ]);
  }

  function buildRow(s, shape, images) {
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
    row._elapsed = el("span", { class: "parallel-runs-elapsed" });
    row._elapsedText = "";
    top.append(row._elapsed);
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
    row._bar = el("div", { class: "parallel-runs-bar" });
    row._fill = el("div", { class: "parallel-runs-bar-fill" });
    row._bar.append(row._fill);
    row.append(top, row._bar);
    row._node = null;
    if (s.current_node !== null && s.current_node !== undefined && !TERMINAL.has(s.status)) {
      row._node = el("div", { class: "parallel-runs-node" });
      row._node.dataset.node = s.current_node;
      row.append(row._node);
    }
    const last = lastText(s);
    row._text = null;
    if (last) {
      row._text = el("div", { class: "parallel-runs-text" });
      row._text.dataset.node = last[0];
      row.append(row._text);
    }
    const thumbs = el("div", { class: "parallel-runs-thumbs" });
    for (const image of images) {
      const img = el("img", { class: "parallel-runs-thumb" });
      if (image.preview) img.classList.add("parallel-runs-preview");
      img.src = image.src;
      if (!image.preview) {
        img.alt = image.filename;
        img.dataset.node = image.node;
        img.dataset.filename = image.filename;
      }
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
    row._shape = shape;
    showProgress(row, s);
    updateElapsed(row, s);
    return row;
  }

  /** The parts of a row that change at every step; each written only when it changed. */
  function showProgress(row, s) {
    const progress = promptProgress(store, s.prompt_id);
    const width = `${Math.round(progress.fraction * 100)}%`;
    if (row._fill.style.width !== width) row._fill.style.width = width;
    const fraction = progress.fraction.toFixed(3);
    if (row._bar.dataset.fraction !== fraction) row._bar.dataset.fraction = fraction;
    if (row._node) {
      const node = nodeProgress(store, s.prompt_id, s.current_node);
      const steps = node && node.max > 1 ? ` ${node.value}/${node.max}` : "";
      const text = `${nodeName(s, s.current_node)}${steps}`;
      if (row._node.textContent !== text) row._node.textContent = text;
    }
    if (row._text) {
      const text = lastText(s)[1];
      if (row._text.textContent !== text) row._text.textContent = text;
    }
    row._rev = s.rev;
  }

  /** Writes the text only when it changed: each write costs the row a layout (100 rows: ~5 ms). */
  function updateElapsed(row, s) {
    const start = s.started_at ?? s.queued_at;
    const end = s.finished_at ?? now();
    const text = start ? formatElapsed(end - start) : "";
    if (row._elapsedText !== text) {
      row._elapsed.textContent = text;
      row._elapsedText = text;
    }
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
        const images = rowImages(s);
        const shape = rowShape(s, images);
        if (row?._shape === shape) {
          showProgress(row, s); // a step: bar and texts in place, no new row to style and lay out
          updateElapsed(row, s);
        } else {
          const fresh = buildRow(s, shape, images);
          if (row) {
            if (row === before) before = fresh; // keep the insertion point inside the list
            row.replaceWith(fresh);
          }
          row = fresh;
          rows.set(s.prompt_id, row);
        }
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
    const counts = `${running} running, ${queued} queued`;
    const idle = running + queued === 0;
    const any = prompts.length > 0;
    // Written only when changed, as the rows are: an unchanged write still costs a layout.
    if (summary.textContent !== counts) summary.textContent = counts;
    if (halt.disabled !== idle) halt.disabled = idle;
    if (empty.hidden !== any) empty.hidden = any;
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
