// Parallel Runs: a small toast with an action button, for frontends whose stock toast cannot
// carry one.
//
// The pinned frontend (1.32) shows extension toasts through PrimeVue's <Toast> with no
// template: a severity icon, a summary and a detail, all text (a clickable toast there needs a
// `group` with templated content, which only the app itself can register). The newest (1.58)
// has its own toaster whose toasts take `action: {label, onClick}`; there this view is not used
// (see hooks/away_toast.js). This one draws itself like PrimeVue's (its theme variables, same
// corner: below the stock toasts when some are showing), as `.parallel-runs-toast` elements in
// one `.parallel-runs-toasts` stack.

import { el } from "./dom.js";

const GAP_PX = 8;

/**
 * createToastStack({doc}) -> {show({kind, title, detail, action, life}) -> {dismiss}, element}.
 * `kind` is "success" | "error" | "info"; `action` is `{label, onClick}` (the toast closes
 * after its click); `life` in ms (the timer stops while the pointer is over the toast;
 * Infinity: until closed).
 */
export function createToastStack({ doc = document } = {}) {
  let stack = null;

  function ensureStack() {
    if (stack?.isConnected) return stack;
    stack = el("div", { class: "parallel-runs-toasts" });
    doc.body.append(stack);
    return stack;
  }

  /** Where the stock toasts sit (top right of the canvas), and below any that are showing. */
  function place(node) {
    const stock = doc.querySelector(".p-toast.p-toast-top-right");
    const view = doc.defaultView;
    let top = 100;
    let right = 20;
    if (stock && view) {
      const style = view.getComputedStyle(stock);
      top = Number.parseFloat(style.top) || top;
      right = Number.parseFloat(style.right) || right;
      const rect = stock.getBoundingClientRect();
      if (stock.querySelector(".p-toast-message") && rect.height > 0) {
        top = Math.max(top, rect.bottom + GAP_PX);
      }
    }
    node.style.top = `${top}px`;
    node.style.right = `${right}px`;
  }

  function show({ kind = "info", title, detail = "", action = null, life = 10_000 }) {
    const root = ensureStack();
    let timer = null;
    const item = el("div", {
      class: "parallel-runs-toast",
      "data-kind": kind,
      role: kind === "error" ? "alert" : "status",
      "aria-live": kind === "error" ? "assertive" : "polite",
    });
    const dismiss = () => {
      clearTimeout(timer);
      item.remove();
      if (root.childElementCount === 0) root.remove();
    };
    const close = el("button", {
      type: "button",
      class: "parallel-runs-toast-close",
      "aria-label": "Close",
      text: "×",
    });
    close.addEventListener("click", dismiss);
    const text = el("div", { class: "parallel-runs-toast-text" }, [
      el("div", { class: "parallel-runs-toast-title", text: title }),
    ]);
    if (detail) text.append(el("div", { class: "parallel-runs-toast-detail", text: detail }));
    if (action) {
      const button = el("button", {
        type: "button",
        class: "parallel-runs-toast-action",
        text: action.label,
      });
      button.addEventListener("click", () => {
        dismiss();
        action.onClick();
      });
      text.append(button);
    }
    const icon = el("span", { class: "parallel-runs-toast-icon", "aria-hidden": "true" });
    item.append(icon, text, close);
    const start = () => {
      clearTimeout(timer);
      if (Number.isFinite(life) && life > 0) timer = setTimeout(dismiss, life);
    };
    item.addEventListener("mouseenter", () => clearTimeout(timer));
    item.addEventListener("mouseleave", start);
    if (root.childElementCount === 0) place(root);
    root.append(item);
    start();
    return { dismiss, element: item };
  }

  return {
    show,
    get element() {
      return stack;
    },
  };
}
