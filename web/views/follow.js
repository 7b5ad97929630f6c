// Parallel Runs: what the title, the favicon and the top bar share. Each redraws a stock part
// of the page from the store; it must redraw when the store changes, when the "Show prompts
// from" scope changes, and when the frontend rewrites that part of the page.

/**
 * Run `apply` now and on every change of `store`, `scope` and the page parts in `watch`
 * ([[node, MutationObserverInit], ...]; missing nodes are skipped). Returns stop().
 */
export function follow({ store, scope, apply, watch = [] }) {
  const unsubscribe = store.subscribe(apply);
  const unscope = scope.subscribe(apply);
  const observers = [];
  for (const [node, options] of watch) {
    if (!node) continue;
    const observer = new MutationObserver(apply);
    observer.observe(node, options);
    observers.push(observer);
  }
  apply();
  return () => {
    unsubscribe();
    unscope();
    for (const observer of observers) observer.disconnect();
  };
}
