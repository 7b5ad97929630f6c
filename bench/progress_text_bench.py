"""Added cost per progress-text frame: ComfyUI's stock path vs. the prompt-scoped path.

Both run ComfyUI's own PromptServer code (send_progress_text -> message queue -> send ->
send_bytes -> socket) in this process, against in-memory sockets, in the same run:

    .venv/bin/python bench/progress_text_bench.py [--frames N] [--rounds R]

Needs the ComfyUI that scripts/setup provisions (or COMFYUI_PATH). Target: < 5 us added.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class MemorySocket:
    """Counts what the server writes, the way a fast client would consume it."""

    def __init__(self) -> None:
        self.frames = 0

    async def send_bytes(self, data: bytes) -> None:
        self.frames += 1

    async def send_json(self, data: Any) -> None:
        self.frames += 1


def load_comfy_server_module() -> Any:
    comfy = Path(os.environ.get("COMFYUI_PATH") or REPO / ".deps" / "ComfyUI")
    sys.path.insert(0, str(comfy))
    sys.argv = [sys.argv[0], "--cpu"]  # as main.py does: parse argv, so --cpu applies
    import utils.install_util  # noqa: F401  ComfyUI's utils/, before comfy/ shadows the name

    # isort: split
    import comfy.options

    comfy.options.enable_args_parsing()
    import server  # ComfyUI's server.py

    return server


def load_install() -> Any:
    """The package's installer, imported as ComfyUI imports the package (by path)."""
    spec = importlib.util.spec_from_file_location(
        "parallel_runs_node", REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["parallel_runs_node"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("parallel_runs_node.server_routes.patches.progress_scope")


def make_server(server_mod: Any, clients: dict[str, dict], loop: asyncio.AbstractEventLoop) -> Any:
    """A PromptServer whose messaging methods are real, without its web app."""
    instance = server_mod.PromptServer.__new__(server_mod.PromptServer)
    instance.loop = loop
    instance.messages = asyncio.Queue()
    instance.sockets = {sid: MemorySocket() for sid in clients}
    instance.sockets_metadata = {sid: {"feature_flags": f} for sid, f in clients.items()}
    instance.client_id = next(iter(clients))
    instance.last_prompt_id = "prompt-1"
    return instance


async def run_frames(instance: Any, frames: int) -> float:
    """Seconds for `frames` frames from the node's call to the socket write."""
    from comfy_execution.utils import CurrentNodeContext

    started = time.perf_counter()
    with CurrentNodeContext("prompt-1", "7"):
        for i in range(frames):
            instance.send_progress_text(f"step {i}/{frames}", "7")
            await asyncio.sleep(0)  # call_soon_threadsafe -> the queue
            while not instance.messages.empty():
                await instance.send(*instance.messages.get_nowait())
    return time.perf_counter() - started


SCENARIOS = {
    "1 client, current frontend (scoped frame)": {"c0": {"supports_progress_text_metadata": True}},
    "1 client, old frontend (legacy frame + JSON event)": {"c0": {}},
    "4 clients, frame to the queuing one only": {
        f"c{i}": {"supports_progress_text_metadata": True} for i in range(4)
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    server_mod = load_comfy_server_module()
    install = load_install().install_progress_scope
    loop = asyncio.new_event_loop()
    print(f"frames per round: {args.frames}, rounds: {args.rounds} (median reported)")
    print(f"{'scenario':52} {'stock us':>9} {'scoped us':>10} {'added us':>9}")
    for name, clients in SCENARIOS.items():
        stock, scoped = (
            make_server(server_mod, clients, loop),
            make_server(server_mod, clients, loop),
        )
        install(scoped, {})
        times: dict[str, list[float]] = {"stock": [], "scoped": []}
        for instance in (stock, scoped):  # warm-up, not counted
            loop.run_until_complete(run_frames(instance, args.frames // 4))
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            for label, instance in (("stock", stock), ("scoped", scoped)):
                seconds = loop.run_until_complete(run_frames(instance, args.frames))
                times[label].append(seconds / args.frames * 1e6)
        s, p = statistics.median(times["stock"]), statistics.median(times["scoped"])
        print(f"{name:52} {s:9.2f} {p:10.2f} {p - s:9.2f}")
        writes = {sid: sock.frames for sid, sock in scoped.sockets.items()}
        print(f"{'':52} socket writes (scoped): {writes}")
    loop.close()


if __name__ == "__main__":
    main()
