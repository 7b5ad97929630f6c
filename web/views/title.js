// Parallel Runs: the browser tab title says how many prompts run and how far they are,
// e.g. "[2 running 45%] ComfyUI" or "[1 running +1 queued 45%] ComfyUI" (one local prompt runs
// at a time; the others wait), and goes back to the frontend's own title when idle.

const PREFIX = /^\[\d+ running (\+\d+ queued )?\d+%\] /;

/** Pure: the title for `base` given aggregateProgress() = {running, fraction} and `queued`. */
export function titleFor(base, { running, fraction }, queued = 0) {
  const plain = base.replace(PREFIX, "");
  if (!running && !queued) return plain;
  const waiting = queued ? `+${queued} queued ` : "";
  return `[${running} running ${waiting}${Math.round(fraction * 100)}%] ${plain}`;
}

/**
 * Keep document.title prefixed while prompts run. The frontend rewrites the title itself
 * (workflow name, its own progress), so a MutationObserver re-applies the prefix after it.
 */
export function installTitle({ doc, store, scope, aggregate }) {
  const apply = () => {
    const shown = scope.shown(store.all());
    const queued = shown.filter((s) => s.status === "queued").length;
    const next = titleFor(doc.title, aggregate(store, shown), queued);
    if (next !== doc.title) doc.title = next;
  };
  const unsubscribe = store.subscribe(apply);
  const unscope = scope.subscribe(apply);
  const head = doc.querySelector("head");
  const observer = new MutationObserver(apply);
  if (head) observer.observe(head, { subtree: true, childList: true, characterData: true });
  apply();
  return () => {
    unsubscribe();
    unscope();
    observer.disconnect();
    doc.title = doc.title.replace(PREFIX, "");
  };
}
