"""The panel with many prompts in flight: time per update of the real panel (rows keyed by
prompt id, touched only when their prompt changed) vs. a full re-render, in headless Chromium.

    .venv/bin/python bench/panel_bench.py [--prompts 100] [--updates 500] [--time-cap 90]
        [--web DIR]

The repo's web/ files (or --web DIR, e.g. an older copy, for a before/after) are served from a
static server on 127.0.0.1, with the headers that make the page cross-origin isolated, so that
performance.now() has 5 us resolution rather than 100 us. In the page: a real store
(web/state/prompt_state.js) and a real createPanel (web/views/panel.js) with the extension's
stylesheet, in a 340 x 900 px sidebar-sized box, with stub api/tabs/names/scope objects. Every
prompt is in flight (running, 6 nodes of which 2 cached, 1 done with an image output, the
current one at some step of 20, a progress text; every third has a preview).

One update = one event through store.dispatch (4 in 5 a `progress` step, 1 in 5 a
`progress_text`, on a prompt drawn by a seeded generator), then render() synchronously, as the
frame would, then a forced style + layout (reading offsetHeight). Timed with performance.now()
around all three; paint and compositing are not included. One update per frame: the clock the
store and the panel read moves 1/60 s per update, so the elapsed times of the running prompts
tick (each every 0.1 s) as they would on screen. Per block, the renderer main thread's CPU
time is read too (CDP Performance.getMetrics, ThreadTime in thread ticks): on a loaded machine
the wall-clock p95 counts waits for a core, the CPU time does not.

The baseline, timed on the same page with the same kind of events: a full re-render per update
(the panel destroyed and built again, every row rebuilt from the store: what a panel without
keyed rows does). The two alternate in blocks of 100 updates, each block's order swapped round
by round. Target: median and p95 of the real panel under 4 ms per update at 100 prompts.
Bounded: at most --updates per method (<= 5000) and --time-cap seconds of timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys
import threading
import time
import zlib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the browser launch the tests use

from chromium_launch import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

TARGET_MS = 4.0
BLOCK = 100


def png_pixel() -> bytes:
    """A 1x1 PNG, for the thumbnails' /view URLs (so the rows' images load as they would)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)  # 1x1, 8-bit RGBA
    pixels = zlib.compress(b"\x00\x3b\x82\xf6\xff")
    body = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


PIXEL = png_pixel()

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>panel bench</title>
<link rel="stylesheet" href="/parallel_runs.css">
<style>body { margin: 0; background: #1e1e1e; font-family: sans-serif; }
#host { width: 340px; height: 900px; }</style>
</head><body><div id="host"></div></body></html>
"""

# Set-up in the page: store, stubs, prompts in flight, the panel; window.__bench runs blocks.
SETUP = """async ({ prompts, seed }) => {
  const { createStore } = await import('/state/prompt_state.js');
  const { createPanel, createPreviewUrls } = await import('/views/panel.js');
  let a = seed >>> 0;
  const random = () => {  // mulberry32
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  // One update per frame: the clock the store and the panel read moves 1/60 s per update.
  let clock = Date.now();
  const now = () => clock;
  const previews = createPreviewUrls();
  const store = createStore({ cap: 50, now, onPreviewEvicted: (p) => previews.revoke(p) });
  const host = document.getElementById('host');
  const titles = { 1: 'Load Checkpoint', 2: 'CLIP Text Encode', 3: 'Empty Latent Image',
    4: 'KSampler', 5: 'VAE Decode', 6: 'Save Image' };
  const stubs = {
    store,
    api: { apiURL: (path) => `/api${path}` },
    tabs: {
      visibleId: () => 'wf-0',
      nodeTitle: (id) => titles[id] ?? null,
      label: (id) => (id ? `workflow ${id.slice(3)}.json` : ''),
    },
    names: new Map(),
    stop: async () => ({ ok: true, message: 'stopped' }),
    stopAll: async () => {},
    previews,
    scope: { shown: (p) => p, origin: () => 'tab', subscribe: () => () => {} },
    now,
  };
  const pixel = await (await fetch('/api/view?filename=pixel.png')).blob();
  const ids = [];
  const step = {};
  const current = {};
  for (let i = 0; i < prompts; i += 1) {
    const id = `${String(i).padStart(8, '0')}-4a6e-4b1c-9d2f-bench${i}`;
    ids.push(id);
    const nodes = ['1', '2', '3', '4', '5', '6'];
    store.dispatch({ type: 'parallel.queued', data: { prompt_id: id, workflow_id: `wf-${i % 8}`,
      client_id: 'c1', executor: i % 4 === 0 ? 'runpod:ep-bench' : 'local', node_ids: nodes } });
    clock += 37;  // started 37 ms apart, so the elapsed times differ
    store.dispatch({ type: 'execution_start', data: { prompt_id: id, timestamp: clock } });
    store.dispatch({ type: 'execution_cached', data: { prompt_id: id, nodes: ['1', '2'] } });
    store.dispatch({ type: 'executing', data: { node: '3', display_node: '3', prompt_id: id } });
    store.dispatch({ type: 'executed', data: { node: '3', display_node: '3', prompt_id: id,
      output: { images: [{ filename: `bench_${i}.png`, subfolder: '', type: 'temp' }] } } });
    store.dispatch({ type: 'executing', data: { node: '4', display_node: '4', prompt_id: id } });
    step[id] = 1 + Math.floor(random() * 19);
    current[id] = '4';
    store.dispatch({ type: 'progress',
      data: { value: step[id], max: 20, prompt_id: id, node: '4' } });
    store.dispatch({ type: 'progress_text', data: { nodeId: '4', prompt_id: id,
      text: `sampling step ${step[id]}/20, ${(random() * 9 + 1).toFixed(2)} it/s` } });
    if (i % 3 === 0) {
      store.dispatch({ type: 'b_preview_with_metadata', data: { blob: pixel, nodeId: '4',
        displayNodeId: '4', parentNodeId: null, realNodeId: '4', promptId: id } });
    }
  }
  let panel = createPanel(stubs);
  host.append(panel.element);

  /** The next update's event: a step of the prompt's sampler, or a new progress text. */
  let texts = 0;
  const nextEvent = () => {
    const id = ids[Math.floor(random() * ids.length)];
    if (random() < 0.2) {
      texts += 1;
      return { type: 'progress_text', data: { nodeId: current[id], prompt_id: id,
        text: `sampling step ${step[id]}/20, ${(random() * 9 + 1).toFixed(2)} it/s #${texts}` } };
    }
    step[id] = (step[id] % 20) + 1;
    const node = current[id];
    return { type: 'progress', data: { value: step[id], max: 20, prompt_id: id, node } };
  };
  const frames = (n) => new Promise((resolve) => {
    const tick = () => (n-- > 0 ? requestAnimationFrame(tick) : resolve());
    tick();
  });
  const update = {
    // The panel as it is: store change -> render() of the same panel.
    keyed() {
      panel.render();
    },
    // A full re-render: throw the panel away and build every row again.
    full() {
      panel.destroy();
      panel = createPanel(stubs);
      host.append(panel.element);
    },
  };
  // Between blocks: let queued frames, image loads and paint settle (not timed).
  window.__settle = () => frames(2);
  window.__bench = ({ method, count }) => {
    const total = [];
    const script = [];
    let changed = 0;
    for (let i = 0; i < count; i += 1) {
      const event = nextEvent();
      clock += 1000 / 60;
      const t0 = performance.now();
      if (store.dispatch(event)) changed += 1;
      update[method]();
      const t1 = performance.now();
      void host.offsetHeight;  // force style + layout
      const t2 = performance.now();
      total.push(t2 - t0);
      script.push(t1 - t0);
    }
    const rows = panel.element.querySelectorAll('.parallel-runs-row').length;
    return { total, script, changed, rows };
  };
  return {
    isolated: window.crossOriginIsolated,
    rows: panel.element.querySelectorAll('.parallel-runs-row').length,
    elements: panel.element.querySelectorAll('*').length,
    running: store.all().filter((s) => s.status === 'running').length,
    userAgent: navigator.userAgent,
  };
}"""


class Handler(SimpleHTTPRequestHandler):
    """web/ as the site root, the bench page, a pixel for every /api/view; isolated, quiet."""

    def do_GET(self) -> None:
        if self.path == "/bench.html":
            return self.reply(PAGE.encode(), "text/html; charset=utf-8")
        if self.path.startswith("/api/view"):
            return self.reply(PIXEL, "image/png")
        return super().do_GET()

    def reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.send_header("Cache-Control", "max-age=3600")
        super().end_headers()

    def guess_type(self, path: str) -> str:
        return "text/javascript" if str(path).endswith(".js") else super().guess_type(path)

    def log_message(self, *args: object) -> None:
        pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def block(page: Any, cdp: Any, method: str, count: int) -> dict[str, Any]:
    """One block of `count` updates; adds `cpu`: the renderer main thread's CPU time per update
    (ms, CDP Performance ThreadTime in thread ticks), which time the renderer spent waiting
    for a core does not inflate."""

    def thread_time() -> float:
        metrics = cdp.send("Performance.getMetrics")["metrics"]
        return next(m["value"] for m in metrics if m["name"] == "ThreadTime")

    page.evaluate("() => window.__settle()")
    before = thread_time()
    result = page.evaluate("(a) => window.__bench(a)", {"method": method, "count": count})
    result["cpu"] = (thread_time() - before) * 1000 / count
    return result


def run(args: argparse.Namespace) -> bool:
    from playwright.sync_api import sync_playwright

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(args.web)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/bench.html"
    results: dict[str, dict[str, list[float]]] = {
        m: {"total": [], "script": [], "cpu": []} for m in ("keyed", "full")
    }
    load = os.getloadavg()[0]
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            info = page.evaluate(SETUP, {"prompts": args.prompts, "seed": args.seed})
            print(
                f"{info['running']} prompts running, {info['rows']} rows, {info['elements']} "
                f"elements in the panel; cross-origin isolated: {info['isolated']}"
            )
            print(f"Chromium: {info['userAgent']}")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable", {"timeDomain": "threadTicks"})
            for method in ("keyed", "full"):  # warm-up, not counted
                block(page, cdp, method, 20)
            deadline = time.monotonic() + args.time_cap
            rounds = 0
            while len(results["keyed"]["total"]) < args.updates:
                if time.monotonic() > deadline:
                    print(f"time cap ({args.time_cap:.0f} s) reached after {rounds} rounds")
                    break
                count = min(BLOCK, args.updates - len(results["keyed"]["total"]))
                order = ("keyed", "full") if rounds % 2 == 0 else ("full", "keyed")
                for method in order:
                    done = block(page, cdp, method, count)
                    if done["rows"] != args.prompts:
                        raise SystemExit(f"{method}: {done['rows']} rows, not {args.prompts}")
                    results[method]["total"] += done["total"]
                    results[method]["script"] += done["script"]
                    results[method]["cpu"].append(done["cpu"] * count)
                rounds += 1
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    load = max(load, os.getloadavg()[0])
    n = len(results["keyed"]["total"])
    print(
        f"{n} updates per method (4 in 5 `progress`, 1 in 5 `progress_text`), each timed: "
        "dispatch + render() + forced style/layout; script: dispatch + render() alone; "
        "cpu: the renderer main thread's CPU time per update (mean)"
    )
    print(
        f"load average {load:.1f} on {os.cpu_count()} cores: wall-clock times (median, p95) "
        "include waits for a core, the cpu column does not"
    )
    print(
        f"{'method':44} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'script med':>11} "
        f"{'cpu mean':>9}"
    )
    rows = {
        "keyed": "panel (rows touched only when changed)",
        "full": "baseline: full re-render of every row",
    }
    for method, label in rows.items():
        total, script = results[method]["total"], results[method]["script"]
        cpu = sum(results[method]["cpu"]) / len(total)
        print(
            f"{label:44} {statistics.median(total):10.3f} {percentile(total, 0.95):8.3f} "
            f"{max(total):8.3f} {statistics.median(script):11.3f} {cpu:9.3f}"
        )
    keyed, full = results["keyed"]["total"], results["full"]["total"]
    ratio = statistics.median(full) / statistics.median(keyed)
    ratio95 = percentile(full, 0.95) / percentile(keyed, 0.95)
    cpu = {m: sum(results[m]["cpu"]) / len(results[m]["total"]) for m in results}
    print(
        f"full re-render / panel: median {ratio:.1f}x, p95 {ratio95:.1f}x, "
        f"cpu {cpu['full'] / cpu['keyed']:.1f}x"
    )
    ok = statistics.median(keyed) < TARGET_MS and percentile(keyed, 0.95) < TARGET_MS
    print(
        f"target (median and p95 < {TARGET_MS:g} ms per update at {args.prompts} prompts):",
        "met" if ok else "NOT met",
        f"(cpu mean {cpu['keyed']:.3f} ms {'<' if cpu['keyed'] < TARGET_MS else '>='} "
        f"{TARGET_MS:g} ms)",
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--updates", type=int, default=500, help="per method")
    parser.add_argument("--time-cap", type=float, default=90.0, help="seconds of timing")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--web", type=Path, default=REPO / "web", help="the web/ tree to serve")
    args = parser.parse_args()
    args.prompts = max(1, min(args.prompts, 1000))
    args.updates = max(1, min(args.updates, 5000))  # bounded
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
