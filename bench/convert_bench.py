"""UI workflow -> API prompt, per workflow: the pure-Python converter vs. the frontend's
`app.graphToPrompt()` in headless Chromium, over the whole comparable corpus in one run.

Starts its own ComfyUI (newest frontend when scripts/setup unpacked it) with
`parallel_runs.client.process.ComfyProcess`, takes `/object_info` from it, and converts every
`comfyui-workflow-templates-json` workflow whose node types the server knows:

    .venv/bin/python bench/convert_bench.py [--repeat N]

The browser path is timed twice: `graphToPrompt` alone (the graph already loaded) and
`loadGraphData` + `graphToPrompt` (what it costs to go from JSON to a prompt, as the Python
path does). Target: Python median < 1 ms per workflow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the browser launch the tests use

from chromium_launch import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from parallel_runs.client.process import ComfyProcess  # noqa: E402
from parallel_runs.convert.graph import VIRTUAL_TYPES  # noqa: E402
from parallel_runs.convert.to_prompt import workflow_to_prompt  # noqa: E402

TIME_IN_PAGE = """async ([items, repeat]) => {
  const app = window.app;
  const out = {};
  for (const [name, workflow] of items) {
    const t0 = performance.now();
    await app.loadGraphData(structuredClone(workflow), true, false, null,
      { skipAssetScans: true, silentAssetErrors: true, deferWarnings: true });
    const t1 = performance.now();
    await app.graphToPrompt();
    const t2 = performance.now();
    const again = [];
    for (let i = 1; i < repeat; i++) {
      const s = performance.now();
      await app.graphToPrompt();
      again.push(performance.now() - s);
    }
    out[name] = { load: t1 - t0, first: t2 - t1, again };
  }
  return out;
}"""


def comfy_dir() -> Path:
    return Path(os.environ.get("COMFYUI_PATH") or REPO / ".deps" / "ComfyUI")


def start_server(base: Path) -> ComfyProcess:
    for sub in ("custom_nodes", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    frontend = REPO / ".deps" / "frontend-newest" / "comfyui_frontend_package" / "static"
    extra = ["--front-end-root", str(frontend)] if (frontend / "index.html").is_file() else []
    server = ComfyProcess(
        comfy_dir=comfy_dir(),
        base_directory=base,
        python=sys.executable,
        extra_args=extra,
        log_path=base / "comfyui.log",
    )
    return server.start(timeout=180)


def corpus(object_info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    import comfyui_workflow_templates_json as templates

    folder = Path(templates.__file__).resolve().parent / "templates"
    known = set(object_info) | VIRTUAL_TYPES
    cases = {}
    for path in sorted(folder.glob("*.json")):
        workflow = json.loads(path.read_text())
        if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
            continue
        subgraphs = (workflow.get("definitions") or {}).get("subgraphs") or []
        ids = {s.get("id") for s in subgraphs}
        nodes = workflow["nodes"] + [n for s in subgraphs for n in s.get("nodes") or []]
        if {n.get("type") for n in nodes} - ids <= known:
            cases[path.name] = workflow
    return cases


def python_times(cases: dict[str, Any], object_info: dict[str, Any], repeat: int) -> list[float]:
    """Per workflow, the median of `repeat` conversions, in ms."""
    result = []
    for workflow in cases.values():
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            workflow_to_prompt(workflow, object_info)
            runs.append((time.perf_counter() - started) * 1000)
        result.append(statistics.median(runs))
    return result


def browser_times(url: str, cases: dict[str, Any], repeat: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_function("() => window.app?.graph && window.LiteGraph", timeout=90_000)
        items = list(cases.items())
        raw: dict[str, Any] = {}
        for start in range(0, len(items), 20):
            raw.update(page.evaluate(TIME_IN_PAGE, [items[start : start + 20], repeat]))
        browser.close()
    prompt_only = [statistics.median([r["first"], *r["again"]]) for r in raw.values()]
    with_load = [r["load"] + r["first"] for r in raw.values()]
    return {"graphToPrompt": prompt_only, "loadGraphData+graphToPrompt": with_load}


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="conversions per workflow")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="convert-bench-") as tmp:
        server = start_server(Path(tmp))
        try:
            with urllib.request.urlopen(f"{server.url}/object_info", timeout=60) as response:
                object_info = json.load(response)
            cases = corpus(object_info)
            python = python_times(cases, object_info, args.repeat)
            browser = browser_times(server.url, cases, args.repeat)
        finally:
            server.stop()
    py_median, py_p95 = summary(python)
    print(f"{len(cases)} workflows, {args.repeat} runs each (per-workflow median)")
    print(f"{'path':34} {'median ms':>10} {'p95 ms':>10} {'median ratio':>13}")
    print(f"{'python workflow_to_prompt':34} {py_median:10.3f} {py_p95:10.3f} {'1.0':>13}")
    for label, times in browser.items():
        median, p95 = summary(times)
        print(f"{'browser ' + label:34} {median:10.3f} {p95:10.3f} {median / py_median:12.1f}x")
    verdict = "meets" if py_median < 1.0 else "MISSES"
    print(f"python median {py_median:.3f} ms {verdict} the < 1 ms target")


if __name__ == "__main__":
    main()
