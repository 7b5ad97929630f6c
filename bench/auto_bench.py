"""Auto across ComfyUI servers of this machine: 12 prompts of a fixed, sleep-bound cost (the Slow
Passthrough node) queued through ComfyUI A with Run on: Auto, allowed 1, 2 and 3 servers (A
itself, then B, then C), loopback only.

    .venv/bin/python bench/auto_bench.py [--prompts 12] [--seconds 2.0]

Measured: wall time from the first queue request to the last `execution_success` on A's
websocket, against the ideal (prompts / servers x cost); and for prompts that ran on B, the
added latency: B's own `execution_success` timestamp -> A's client receives it. Baseline in the
same run: the same prompts queued directly on B, latency from B's timestamp to a client of B.
Targets: wall time within 15% of the ideal, relayed latency minus direct under 150 ms at p95.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from parallel_runs.client.comfy_client import ComfyClient  # noqa: E402
from parallel_runs.client.process import ComfyProcess  # noqa: E402

FINAL = {"execution_success", "execution_error", "execution_interrupted"}


def slow_prompt(seconds: float) -> dict[str, Any]:
    color = random.randrange(0xFFFFFF)  # defeats ComfyUI's cache: every prompt really runs
    return {
        "1": {"class_type": "EmptyImage",
              "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}},
        "2": {"class_type": "ParallelRunsSlowPassthrough",
              "inputs": {"image": ["1", 0], "seconds": seconds, "steps": 4}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "a"}},
    }  # fmt: skip


def start_comfy(base: Path, env: dict[str, str] | None = None) -> ComfyProcess:
    comfy_dir = Path(os.environ.get("COMFYUI_PATH") or REPO / ".deps" / "ComfyUI")
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "parallel-runs").symlink_to(REPO, target_is_directory=True)
    server = ComfyProcess(
        comfy_dir=comfy_dir, base_directory=base, env={**os.environ, **(env or {})}
    )
    return server.start(timeout=180)


async def ends(client: ComfyClient, ids: set[str], stamps: dict[str, float]) -> None:
    """Until every prompt in `ids` ended: when each `execution_success` arrived (monotonic
    clock converted to wall time, as ComfyUI stamps its events)."""
    offset = time.time() - time.monotonic()
    async for event in client.events():
        data = event.data if isinstance(event.data, dict) else {}
        if event.type in FINAL and data.get("prompt_id") in ids:
            if event.type != "execution_success":
                raise RuntimeError(f"prompt {data.get('prompt_id')} ended with {event.type}")
            stamps[data["prompt_id"]] = time.monotonic() + offset
            if ids <= stamps.keys():
                return


async def post(http: aiohttp.ClientSession, url: str, body: Any) -> dict[str, Any]:
    async with http.post(url, json=body) as answer:
        if answer.status != 200:
            raise RuntimeError(f"{url}: HTTP {answer.status}: {await answer.text()}")
        return await answer.json()


async def history_end(http: aiohttp.ClientSession, url: str, prompt_id: str) -> float:
    """When the server itself says the prompt succeeded (seconds since the epoch)."""
    async with http.get(f"{url}/history/{prompt_id}") as answer:
        entry = (await answer.json())[prompt_id]
    for name, data in entry["status"]["messages"]:
        if name == "execution_success":
            return data["timestamp"] / 1000
    raise RuntimeError(f"{prompt_id}: no execution_success in {url}'s history")


async def auto_round(
    a: str, urls: dict[str, str], allowed: list[str], prompts: int, seconds: float
) -> dict[str, Any]:
    """Queue `prompts` through A with Auto limited to `allowed`; wall time and B's latencies."""
    async with ComfyClient(a) as client, aiohttp.ClientSession() as http:
        placed: dict[str, str] = {}  # local prompt id -> executor
        stamps: dict[str, float] = {}
        start = time.monotonic()
        for _ in range(prompts):
            choice = await post(http, f"{a}/parallel/executors/choose", {"allowed": allowed})
            body = {"prompt": slow_prompt(seconds), "client_id": client.client_id}
            if choice["executor"] == "local":
                answer = await post(http, f"{a}/prompt", body)
            else:
                body["executor"] = choice["executor"]
                answer = await post(http, f"{a}/parallel/offload/prompt", body)
            placed[answer["prompt_id"]] = choice["executor"]
        await asyncio.wait_for(ends(client, set(placed), stamps), prompts * seconds + 120)
        wall = time.monotonic() - start
        latencies = []
        async with http.get(f"{a}/parallel/offload/jobs") as answer:
            remote_ids = {j["prompt_id"]: j["job_id"] for j in (await answer.json())["jobs"]}
        for prompt_id, executor in placed.items():
            if executor == "comfyui:b":
                ended = await history_end(http, urls["b"], remote_ids[prompt_id])
                latencies.append(stamps[prompt_id] - ended)
    counts = {name: list(placed.values()).count(name) for name in sorted(set(placed.values()))}
    return {"wall": wall, "latencies": latencies, "placed": counts}


async def direct_round(b: str, prompts: int, seconds: float) -> list[float]:
    """The baseline: the same prompts queued on B itself, B's timestamp -> B's client."""
    async with ComfyClient(b) as client, aiohttp.ClientSession() as http:
        stamps: dict[str, float] = {}
        ids = []
        for _ in range(prompts):
            body = {"prompt": slow_prompt(seconds), "client_id": client.client_id}
            ids.append((await post(http, f"{b}/prompt", body))["prompt_id"])
        await asyncio.wait_for(ends(client, set(ids), stamps), prompts * seconds + 120)
        return [stamps[i] - await history_end(http, b, i) for i in ids]


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def bench(args: argparse.Namespace, a: str, urls: dict[str, str]) -> bool:
    ok = True
    # the baseline's latency does not depend on the cost: short prompts, as many samples
    direct = await direct_round(urls["b"], args.prompts, min(args.seconds, 0.5))
    print(f"baseline, direct on B: latency p50 {statistics.median(direct) * 1000:.0f} ms, "
          f"p95 {p95(direct) * 1000:.0f} ms ({len(direct)} prompts)")  # fmt: skip
    relayed: list[float] = []
    for allowed in (["local"], ["local", "comfyui:b"], ["local", "comfyui:b", "comfyui:c"]):
        result = await auto_round(a, urls, allowed, args.prompts, args.seconds)
        ideal = args.prompts / len(allowed) * args.seconds
        over = result["wall"] / ideal - 1
        ok &= over <= 0.15
        relayed += result["latencies"]
        print(
            f"Auto over {len(allowed)} server(s): wall {result['wall']:.2f} s, ideal "
            f"{ideal:.2f} s ({over:+.1%}, target <= +15%), placed {result['placed']}"
        )
    added = p95(relayed) - p95(direct)
    ok &= added < 0.150
    print(f"relayed via A from B: latency p50 {statistics.median(relayed) * 1000:.0f} ms, "
          f"p95 {p95(relayed) * 1000:.0f} ms ({len(relayed)} prompts); added at p95 "
          f"{added * 1000:.0f} ms (target < 150 ms)")  # fmt: skip
    print("targets met" if ok else "TARGETS MISSED")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auto-bench-") as tmp:
        root = Path(tmp)
        b, c = start_comfy(root / "b"), start_comfy(root / "c")
        servers = f"b={b.url},c={c.url}"
        a = start_comfy(root / "a", {"PARALLEL_RUNS_COMFYUI_SERVERS": servers})
        try:
            ok = asyncio.run(bench(args, a.url, {"b": b.url, "c": c.url}))
        finally:
            for server in (a, b, c):
                server.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
