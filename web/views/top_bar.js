// Parallel Runs: the frontend's top bar (its active count, its queue button's badge, its
// progress overlay) describes the prompts of the workflow tab on screen that this tab shows:
// the prompts its Stop button acts on, wherever they run. By itself the frontend counts the
// server's own queue and follows one "active prompt" (views/stock_top_bar.js), so it says
// "0 active" and "Total: 0%" while a tab's prompt runs on another server. Its elements stay
// its own: we put our numbers into their text (its words and number format kept), our
// fraction into its bars, our marker in place of its dot or badge, and hide its overlay's
// progress view while the tab on screen runs nothing. Vue writes those nodes only when its
// own values change, and we write only what differs, after it (a MutationObserver): no loop.
// A part a frontend version lacks is skipped without a word.

import { follow } from "./follow.js";
import { findTopBar } from "./stock_top_bar.js";

const MARKER = "top-bar-marker"; // data-parallel-runs value of our dot or badge
const MARKER_STYLE = {
  position: "absolute",
  pointerEvents: "none",
  borderRadius: "9999px",
  background: "var(--primary, var(--color-primary-background, #0b8ce9))",
};
const DOT_STYLE = { top: "-2px", right: "-2px", width: "8px", height: "8px" };
const BADGE_STYLE = {
  top: "-4px",
  right: "-4px",
  minWidth: "16px",
  padding: "0 3px",
  boxSizing: "border-box",
  color: "#fff",
  fontSize: "10px",
  fontWeight: "500",
  lineHeight: "14px",
  textAlign: "center",
};

/**
 * Pure: the top bar's figures for the prompts of workflow tab `workflowId` among `prompts`
 * (the ones this tab shows): `{active, running, queued, fraction, percent}`. `progress(list)`
 * is aggregateProgress over a list ({fraction}: the mean of its running prompts).
 */
export function tabFigures(prompts, workflowId, progress) {
  const mine = workflowId == null ? [] : prompts.filter((s) => s.workflow_id === workflowId);
  const running = mine.filter((s) => s.status === "running").length;
  const queued = mine.filter((s) => s.status === "queued").length;
  const fraction = running ? Math.min(1, Math.max(0, progress(mine).fraction || 0)) : 0;
  const percent = Math.round(fraction * 100);
  return { active: running + queued, running, queued, fraction, percent };
}

/** Pure: `text` with its first number replaced by `n` ("0 active" -> "2 active"), or null. */
export function withNumber(text, n) {
  const source = String(text ?? "");
  return /\d/.test(source) ? source.replace(/\d[\d,.\u00a0\u202f]*\d|\d/, String(n)) : null;
}

/**
 * Pure: how a frontend bar shows `fraction`, given its inline style {width, transform}:
 * `["transform", "scaleX(f)"]` (1.58 scales a full-width bar), `["width", "p%"]` (1.32), or
 * null when the bar uses neither.
 */
export function barStyle({ width = "", transform = "" } = {}, fraction) {
  if (/scaleX\(/.test(transform)) return ["transform", `scaleX(${fraction})`];
  if (width) return ["width", `${Math.round(fraction * 100)}%`];
  return null;
}

function setNumber(element, n) {
  if (!element) return;
  const next = withNumber(element.textContent, n);
  if (next !== null && next !== element.textContent) element.textContent = next;
}

function setBar(element, fraction) {
  if (!element) return;
  const style = barStyle(element.style, fraction);
  if (style && element.style[style[0]] !== style[1]) element.style[style[0]] = style[1];
}

function setHidden(element, hidden) {
  if (!element) return;
  const ours = element.dataset.parallelRunsHidden === "1";
  if (hidden && !ours) {
    element.dataset.parallelRunsHidden = "1";
    element.style.setProperty("display", "none", "important");
  } else if (!hidden && ours) {
    delete element.dataset.parallelRunsHidden;
    element.style.removeProperty("display");
  }
}

/** Our dot (`counts` "active") or badge ("queued") on the frontend's button, its own hidden. */
function setMarker(doc, marker, figures) {
  if (!marker) return;
  const { host, stock, counts } = marker;
  if (stock && stock.style.display !== "none") {
    stock.style.setProperty("display", "none", "important");
  }
  const n = counts === "queued" ? figures.queued : figures.active;
  let ours = [...host.children].find((child) => child.dataset.parallelRuns === MARKER);
  if (n === 0) {
    ours?.remove();
    return;
  }
  if (!ours) {
    ours = doc.createElement("span");
    ours.dataset.parallelRuns = MARKER;
    ours.className = counts === "queued" ? "parallel-runs-top-badge" : "parallel-runs-top-dot";
    Object.assign(ours.style, MARKER_STYLE, counts === "queued" ? BADGE_STYLE : DOT_STYLE);
    host.append(ours);
  }
  const text = counts === "queued" ? String(n) : "";
  if (ours.textContent !== text) ours.textContent = text;
}

/**
 * Keep the top bar on our figures for the tab on screen. Returns {refresh, uninstall};
 * call refresh() when the tab on screen changes. `tabs` is createWorkflowTabs(app).
 */
export function installTopBar({ doc, store, scope, tabs, aggregate }) {
  let bars = []; // the bar elements whose style the observer watches

  function apply() {
    const shown = scope.shown(store.all());
    const figures = tabFigures(shown, tabs.visibleId(), (list) => aggregate(store, list));
    const parts = findTopBar(doc);
    setNumber(parts.countLabel, figures.active);
    setMarker(doc, parts.marker, figures);
    const overlay = parts.overlay;
    if (overlay) {
      setNumber(overlay.total, figures.percent);
      setBar(overlay.totalBar, figures.fraction);
      setNumber(overlay.running, figures.running);
      setNumber(overlay.queued, figures.queued);
      setHidden(overlay.content, figures.running === 0);
    }
    setBar(parts.inlineBar, figures.fraction);
    watchBars([overlay?.totalBar, parts.inlineBar].filter(Boolean));
  }

  const styles = new MutationObserver(apply);
  function watchBars(next) {
    if (next.length === bars.length && next.every((bar, i) => bar === bars[i])) return;
    styles.disconnect();
    bars = next;
    for (const bar of bars) styles.observe(bar, { attributes: true, attributeFilter: ["style"] });
  }

  const tree = { subtree: true, childList: true, characterData: true };
  const stop = follow({ store, scope, apply, watch: [[doc.body, tree]] });
  return {
    refresh: apply,
    uninstall() {
      stop();
      styles.disconnect();
      doc.querySelectorAll(`[data-parallel-runs="${MARKER}"]`).forEach((el) => el.remove());
      doc.querySelectorAll("[data-parallel-runs-hidden]").forEach((el) => setHidden(el, false));
      findTopBar(doc).marker?.stock?.style.removeProperty("display");
    },
  };
}
