// Parallel Runs: the favicon shows the progress of the prompts this tab shows while they are
// in flight (views/favicon_art.js draws it), and is the frontend's own again when they end.
//
// What the frontend does (useProgressFavicon, the same on the pinned 1.32 and newest 1.58):
// through vueuse's useFavicon it sets the href of every `link[rel*="icon"]` in <head> (adding
// one when there is none) to /assets/images/favicon_progress_16x16/frame_<0..9>.png from its
// single active prompt's progress, frame_9 when it thinks nothing runs. It writes only when
// its own progress changes and never reads the element back, so ours is put back after each
// of its writes (a MutationObserver) and written only when it differs: the two never loop.

import { follow } from "./follow.js";
import { drawFavicon, FAVICON_SIZE, faviconKey, faviconState } from "./favicon_art.js";

const ICON_LINKS = 'link[rel*="icon"]'; // the links the frontend rewrites

/** Render a favicon state to a PNG data: URL on one reused canvas (null without 2D). */
export function canvasRenderer(doc, size = FAVICON_SIZE) {
  let canvas = null;
  return (state) => {
    if (!canvas) {
      canvas = doc.createElement("canvas");
      canvas.width = size;
      canvas.height = size;
    }
    const ctx = canvas.getContext("2d");
    if (!ctx) return null;
    drawFavicon(ctx, state, size);
    return canvas.toDataURL("image/png");
  };
}

/**
 * Keep our favicon on while the shown prompts are in flight; put the frontend's latest back
 * when they end. Returns {refresh, uninstall}. `render(state)` -> URL (canvasRenderer by
 * default), called once per distinct picture.
 */
export function installFavicon({ doc, store, scope, aggregate, render = canvasRenderer(doc) }) {
  const head = doc.head;
  const stock = new WeakMap(); // link -> the href the frontend gave it last
  const written = new WeakMap(); // link -> the href we gave it last
  const added = new Set(); // links we created because the page had none
  let key = faviconKey(null);
  let url = null;

  function restore(link) {
    if (written.get(link) !== link.getAttribute("href")) return; // the frontend's since
    written.delete(link);
    if (added.has(link)) {
      added.delete(link);
      link.remove();
    } else if (stock.get(link) == null) {
      link.removeAttribute("href");
    } else {
      link.setAttribute("href", stock.get(link));
    }
  }

  function apply() {
    const shown = scope.shown(store.all());
    const queued = shown.filter((s) => s.status === "queued").length;
    const state = faviconState(aggregate(store, shown), queued);
    const nextKey = faviconKey(state);
    if (nextKey !== key) {
      key = nextKey;
      url = state ? render(state) : null;
    }
    const links = [...head.querySelectorAll(ICON_LINKS)];
    for (const link of links) {
      const href = link.getAttribute("href");
      if (written.has(link) && href === written.get(link)) continue;
      stock.set(link, href); // the frontend's (it may have taken over a link we added)
      written.delete(link);
      added.delete(link);
    }
    if (!url) {
      for (const link of links) restore(link);
      return;
    }
    if (links.length === 0) {
      const link = doc.createElement("link");
      link.rel = "icon";
      link.dataset.parallelRuns = "favicon";
      added.add(link);
      head.append(link);
      links.push(link);
    }
    for (const link of links) {
      if (link.getAttribute("href") === url) continue;
      link.setAttribute("href", url);
      written.set(link, url);
    }
  }

  const watched = { subtree: true, childList: true, attributes: true, attributeFilter: ["href"] };
  const stop = follow({ store, scope, apply, watch: [[head, watched]] });
  return {
    refresh: apply,
    uninstall() {
      stop();
      for (const link of head.querySelectorAll(ICON_LINKS)) restore(link);
    },
  };
}
