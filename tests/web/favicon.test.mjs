// Unit tests for web/views/favicon_art.js (what our favicon draws) and web/views/favicon.js
// (ours while prompts are in flight, the frontend's own back when they end, no tug of war).
import assert from "node:assert/strict";
import { test } from "node:test";

import { installFavicon } from "../../web/views/favicon.js";
import {
  countLabel,
  drawFavicon,
  faviconKey,
  faviconState,
  RING_STEPS,
} from "../../web/views/favicon_art.js";

/** A 2D context stand-in that records what is drawn. */
function recorder() {
  const calls = [];
  const ctx = new Proxy(
    {},
    {
      get: (_, name) => (...args) => calls.push([name, ...args]),
      set: (_, name, value) => calls.push([`=${String(name)}`, value]) > 0,
    },
  );
  return { ctx, calls };
}

test("faviconState: nothing in flight draws nothing; progress is clamped", () => {
  assert.equal(faviconState({ running: 0, fraction: 0 }, 0), null);
  assert.deepEqual(faviconState({ running: 2, fraction: 0.25 }, 1), {
    running: 2,
    queued: 1,
    fraction: 0.25,
  });
  assert.equal(faviconState({ running: 1, fraction: 3 }).fraction, 1);
  assert.equal(faviconState({ running: 0, fraction: 0.7 }, 2).fraction, 0);
});

test("faviconKey: one picture per ring step, count and waiting marker", () => {
  const at = (fraction, running = 1, queued = 0) =>
    faviconKey(faviconState({ running, fraction }, queued));
  assert.equal(faviconKey(null), "idle");
  assert.equal(at(0.5), at(0.5 + 0.2 / RING_STEPS)); // same step: same picture
  assert.notEqual(at(0.5), at(0.5 + 1 / RING_STEPS));
  assert.notEqual(at(0.5, 1), at(0.5, 2));
  assert.notEqual(at(0.5, 1, 0), at(0.5, 1, 1));
  assert.equal(at(0.5, 1, 1), at(0.5, 1, 3)); // the marker says "some wait", not how many
});

test("drawFavicon: a ring from the top as far as the progress, the count in the middle", () => {
  const { ctx, calls } = recorder();
  drawFavicon(ctx, faviconState({ running: 2, fraction: 0.25 }, 0), 32);
  const arcs = calls.filter(([name]) => name === "arc");
  const ring = arcs.find(([, , , , start]) => start === -Math.PI / 2);
  assert.ok(ring, "a progress arc starts at the top");
  assert.ok(Math.abs(ring[5] - (-Math.PI / 2 + Math.PI / 2)) < 1e-9, "a quarter turn");
  assert.deepEqual(calls.find(([name]) => name === "fillText").slice(1, 2), ["2"]);
  assert.equal(arcs.length, 3); // disc, track, progress: no waiting dot
});

test("drawFavicon: no progress arc at 0, a dot while prompts wait", () => {
  const { ctx, calls } = recorder();
  drawFavicon(ctx, faviconState({ running: 0, fraction: 0 }, 2), 32);
  const arcs = calls.filter(([name]) => name === "arc");
  assert.equal(arcs.length, 3); // disc, track, waiting dot
  assert.ok(!arcs.some(([, , , , start]) => start === -Math.PI / 2));
  assert.equal(countLabel(12), "9+");
});

// --- the DOM wiring, on a stand-in <head> ---

class FakeLink {
  constructor(href) {
    this.attrs = href === undefined ? {} : { href };
    this.dataset = {};
    this.rel = "icon";
  }
  getAttribute(name) {
    return this.attrs[name] ?? null;
  }
  setAttribute(name, value) {
    this.attrs[name] = String(value);
    page.writes.push(value);
    page.mutate();
  }
  removeAttribute(name) {
    delete this.attrs[name];
  }
  remove() {
    page.links = page.links.filter((link) => link !== this);
  }
}

const page = {
  links: [],
  writes: [],
  observers: [],
  mutate() {
    // Observers see every change, their own writes included, until nothing changes (a tug
    // of war would go on: it is cut at 20 rounds, and its writes show in `writes`).
    this.pending = true;
    if (this.busy) return;
    this.busy = true;
    try {
      for (let round = 0; this.pending && round < 20; round += 1) {
        this.pending = false;
        for (const fn of this.observers) fn();
      }
    } finally {
      this.busy = false;
    }
  },
};

const doc = {
  head: {
    querySelectorAll: () => [...page.links],
    append(link) {
      page.links.push(link);
    },
  },
  createElement: () => new FakeLink(),
};

function fakeStore() {
  const listeners = new Set();
  return {
    prompts: [],
    all() {
      return this.prompts;
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    set(prompts) {
      this.prompts = prompts;
      for (const fn of listeners) fn();
    },
  };
}

const everyone = { shown: (prompts) => prompts, subscribe: () => () => {} };
const aggregate = (_, prompts) => {
  const running = prompts.filter((s) => s.status === "running");
  const sum = running.reduce((total, s) => total + s.fraction, 0);
  return { running: running.length, fraction: running.length ? sum / running.length : 0 };
};

test("ours while prompts run, the frontend's latest back when idle, and no loop", () => {
  globalThis.MutationObserver = class {
    constructor(fn) {
      this.fn = fn;
    }
    observe() {
      page.observers.push(this.fn);
    }
    disconnect() {
      page.observers = page.observers.filter((fn) => fn !== this.fn);
    }
  };
  try {
    page.links = [new FakeLink("/frame_9.png")];
    const store = fakeStore();
    const drawn = [];
    const render = (state) => {
      drawn.push(faviconKey(state));
      return `data:${faviconKey(state)}`;
    };
    const favicon = installFavicon({ doc, store, scope: everyone, aggregate, render });
    assert.equal(page.links[0].getAttribute("href"), "/frame_9.png"); // idle: untouched
    assert.deepEqual(page.writes, []);

    store.set([{ status: "running", fraction: 0.5 }]);
    const ours = page.links[0].getAttribute("href");
    assert.match(ours, /^data:1\|-\|16/);

    // the frontend swaps its own frame in: ours goes back on, once
    page.writes.length = 0;
    page.links[0].setAttribute("href", "/frame_3.png");
    assert.deepEqual(page.writes, ["/frame_3.png", ours]);

    store.set([{ status: "running", fraction: 0.5 }]); // same picture: not drawn again
    assert.equal(drawn.length, 1);

    page.writes.length = 0;
    store.set([{ status: "success", fraction: 1 }]);
    assert.equal(page.links[0].getAttribute("href"), "/frame_3.png"); // its latest
    assert.deepEqual(page.writes, ["/frame_3.png"]);
    favicon.uninstall();
  } finally {
    delete globalThis.MutationObserver;
  }
});

test("a page with no icon link gets ours while prompts run, and loses it after", () => {
  globalThis.MutationObserver = class {
    observe() {}
    disconnect() {}
  };
  try {
    page.links = [];
    const store = fakeStore();
    const render = (state) => `data:${faviconKey(state)}`;
    installFavicon({ doc, store, scope: everyone, aggregate, render });
    assert.equal(page.links.length, 0);
    store.set([{ status: "queued", fraction: 0 }]);
    assert.equal(page.links.length, 1);
    assert.equal(page.links[0].dataset.parallelRuns, "favicon");
    store.set([]);
    assert.equal(page.links.length, 0);
  } finally {
    delete globalThis.MutationObserver;
  }
});
