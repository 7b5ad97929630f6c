"""Offload routes on a bare aiohttp application, wired to the fake RunPod control plane.

A `RecordingServer` stands in for PromptServer: it only needs `send_sync`, and records what
would have gone to the websocket. Node classes are a small stand-in for ComfyUI's mapping.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conftest import find_comfyui, make_base_directory
from parallel_runs_node.parallel_runs.client.process import ComfyProcess
from parallel_runs_node.parallel_runs.runpod.client import RetryPolicy
from parallel_runs_node.server_routes.executors.install import AtExit, Offload, install_offload
from parallel_runs_node.server_routes.executors.outputs import OutputSaver
from parallel_runs_node.server_routes.executors.runpod.poll_planner import PollPlanner

FAST_RETRY = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.05)
# the relay retries failed status polls itself (one request each): as quickly, in tests
FAST_RELAY = {"retry_delays": (0.01, 0.05)}
# status polls as often as a test wants, not within a real job's request budget (whose waits
# while a job looks queued grow to 2 s): for tests about what the polls answer, not their pace
FAST_POLLS = functools.partial(
    PollPlanner, rate=100.0, queue_first=0.01, queue_max=0.05, running_default=0.05
)
# the same, also while a job runs (FAST_POLLS still spaces those by the job's expected end):
# for tests that must see a short job running
OFTEN_POLLS = functools.partial(FAST_POLLS, running_max=0.05)


def node_class(name: str, output: bool = False) -> type:
    return type(name, (), {"OUTPUT_NODE": output})


NODE_CLASSES: dict[str, type] = {
    "EmptyImage": node_class("EmptyImage"),
    "ImageInvert": node_class("ImageInvert"),
    "LoadImage": node_class("LoadImage"),
    "LoadImageMask": node_class("LoadImageMask"),
    "SaveImage": node_class("SaveImage", output=True),
    "PreviewAny": node_class("PreviewAny", output=True),
}


async def wait_until(
    condition: Callable[[], bool], what: str, timeout: float = 20.0, interval: float = 0.05
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` s (never hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def events_until(client: Any, prompt_id: str, final: set[str], timeout: float = 60):
    """A websocket client's events for `prompt_id`, until one whose type is in `final`."""
    seen: list = []

    async def collect() -> None:
        async for event in client.events():
            if isinstance(event.data, dict) and event.data.get("prompt_id") == prompt_id:
                seen.append(event)
                if event.type in final:
                    return

    await asyncio.wait_for(collect(), timeout)
    return seen


def writer_threads(monkeypatch: Any, module: Any) -> list[int]:
    """The threads that call `module.write_private` from now on (each write still happens):
    to show that file writes run off the event loop."""
    threads: list[int] = []
    real = module.write_private

    def spy(path: Path, text: str, durable: bool = True) -> None:
        threads.append(threading.get_ident())
        real(path, text, durable)

    monkeypatch.setattr(module, "write_private", spy)
    return threads


def simple_prompt(color: int = 0) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
    }


def real_prompt() -> dict:
    """Weight-free nodes that exist in a real ComfyUI."""
    prompt = simple_prompt(color=uuid.uuid4().int % 0xFFFFFF)
    prompt["2"]["inputs"]["filename_prefix"] = "offload"
    return prompt


@dataclass
class RecordingServer:
    """PromptServer's `send_sync`, recording (event, data, client id)."""

    events: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)

    def send_sync(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        # serialise like the websocket would: anything not JSON-able fails here
        self.events.append((event, json.loads(json.dumps(data)), sid))

    def of(self, prompt_id: str) -> list[tuple[str, dict[str, Any]]]:
        return [(e, d) for e, d, _ in self.events if d.get("prompt_id") == prompt_id]

    def types(self, prompt_id: str) -> list[str]:
        return [e for e, _ in self.of(prompt_id)]

    def ending_types(self, prompt_id: str) -> list[str]:
        """`types` without the idle marker (`executing` with no node) that stock ComfyUI sends
        after a prompt's final event, so that tests can check how it ended."""
        return [
            e for e, d in self.of(prompt_id) if not (e == "executing" and d.get("node") is None)
        ]


@dataclass
class Harness:
    client: TestClient
    offload: Offload
    server: RecordingServer
    base: Path

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def relay(self) -> Any:
        return self.offload.deps.relay

    async def post(self, path: str, body: Any, **options: Any) -> tuple[int, Any]:
        response = await self.client.post(path, json=body, **options)
        return response.status, await response.json()

    async def post_raw(
        self, path: str, data: str | bytes, content_type: str, **headers: str
    ) -> tuple[int, Any]:
        """POST `data` as is, with the given Content-Type (and other headers)."""
        headers = {"Content-Type": content_type, **headers}
        response = await self.client.post(path, data=data, headers=headers)
        return response.status, await response.json()

    async def offload_prompt(self, prompt: Mapping[str, Any] | None = None, **extra: Any) -> str:
        body = {"prompt": prompt or simple_prompt(), "client_id": "tab-1", **extra}
        status, answer = await self.post("/parallel/offload/prompt", body)
        assert status == 200, answer
        return answer["prompt_id"]

    async def finish(self, prompt_id: str, timeout: float = 20) -> Any:
        return await asyncio.wait_for(self.relay.wait(prompt_id), timeout)

    def files(self) -> list[Path]:
        return sorted(p for p in self.base.rglob("*") if p.is_file())


def harness_env(fake: Any, **extra: str) -> dict[str, str]:
    return {
        "RUNPOD_API_KEY": fake.api_key,
        "RUNPOD_ENDPOINT_BASE_URL": fake.base_url,
        "RUNPOD_ENDPOINT_ID": "ep-test",
        **extra,
    }


def build_app(
    base: Path,
    env: Mapping[str, str],
    *,
    listen: str = "127.0.0.1",
    server: RecordingServer | None = None,
    saver_limits: Mapping[str, int] | None = None,
    at_exit: AtExit | None = None,
    comfyui_options: Mapping[str, Any] | None = None,
    runpod_options: Mapping[str, Any] | None = None,
) -> tuple[web.Application, Offload, RecordingServer]:
    """The offload routes and lifecycle on a bare app, with ComfyUI-like folders under `base`.
    `runpod_options` go to the RunPod executor, over FAST_RELAY."""
    for sub in ("input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    server = server or RecordingServer()
    offload = install_offload(
        server,
        env=env,
        user_dir=base / "user",
        folders={sub: base / sub for sub in ("input", "output", "temp")},
        node_classes=NODE_CLASSES,
        listen=listen,
        saver=OutputSaver(base / "output", **dict(saver_limits or {})),
        client_options={"retry": FAST_RETRY},
        runpod_options={**FAST_RELAY, **dict(runpod_options or {})},
        comfyui_options=comfyui_options,
        at_exit=at_exit,
    )
    app = web.Application()
    app.router.add_routes(offload.routes)
    app.cleanup_ctx.append(offload.cleanup_ctx)
    return app, offload, server


@asynccontextmanager
async def offload_app(base: Path, env: Mapping[str, str], **options: Any) -> AsyncIterator[Harness]:
    """Serve `build_app` on loopback; leaving the block runs the app's shutdown (cleanup)."""
    app, offload, server = build_app(base, env, **options)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Harness(client, offload, server, base)
    finally:
        await client.close()


def start_comfy_a(base: Path, fake: Any, *extra_args: str, **env: str) -> ComfyProcess:
    """A real ComfyUI ("A") with this package, pointed at the fake through its environment
    only (RUNPOD_ENDPOINT_BASE_URL, RUNPOD_API_KEY). Reusing `base` keeps its registry."""
    server = ComfyProcess(
        comfy_dir=find_comfyui(),
        base_directory=base if (base / "custom_nodes").exists() else make_base_directory(base),
        extra_args=extra_args,
        env={**os.environ, **harness_env(fake), **env},
        log_path=base / "comfyui.log",
    )
    return server.start(timeout=180)
