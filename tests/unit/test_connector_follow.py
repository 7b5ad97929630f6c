"""What a follower of one prompt (the RunPod worker, a script) gets from the connector, without
a ComfyUI: its events with a timeout, the node whose bar moved last, output files the server
would not serve, a server that answers only after a while, and the one-line error texts."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from aiohttp import web

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient, Event
from parallel_runs_node.parallel_runs.client.connector import Connector, PromptHandle
from parallel_runs_node.parallel_runs.client.errors import (
    ComfyError,
    OutputsMissing,
    PromptRejected,
    ServerUnavailable,
    describe_failure,
    describe_rejection,
)
from parallel_runs_node.parallel_runs.client.prompt_run import PromptRun, RunStatus

PROMPT = {
    "1": {"class_type": "EmptyImage", "inputs": {}},
    "2": {"class_type": "ParallelRunsSlowPassthrough", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}},
}


def saved(name: str) -> dict[str, str]:
    return {"filename": name, "subfolder": "", "type": "output"}


class FlakyViews(ComfyClient):
    """A server whose history lists two files and that will not serve `gone.png` (a file
    removed between the save and the fetch): fault injection, not a stand-in for ComfyUI."""

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        return {"outputs": {"3": {"images": [saved("kept.png"), saved("gone.png")]}}}

    async def view(
        self, filename: str, subfolder: str = "", kind: str = "output", limit: int | None = None
    ) -> bytes:
        if filename == "gone.png":
            raise ComfyError(404, "")
        return b"\x89PNG kept"


def follow_one(connector: Connector, prompt_id: str = "p") -> PromptHandle:
    """A handle the connector routes events to, as `submit` would leave it."""
    handle = PromptHandle(connector, PromptRun(prompt_id, PROMPT))
    connector._runs[prompt_id] = handle
    return handle


async def test_next_event_times_out_while_quiet_and_returns_none_once_settled():
    connector = Connector("http://127.0.0.1:1")  # never connected: routing needs no socket
    handle = follow_one(connector)
    with pytest.raises(asyncio.TimeoutError):
        await handle.next_event(0.01)
    connector.dispatch(Event("execution_start", {"prompt_id": "p"}))
    assert (await handle.next_event(0.01)).type == "execution_start"
    handle._settle(error=RuntimeError("over"))
    assert await handle.next_event(0.01) is None
    assert await handle.next_event(0.01) is None  # the end stays the end
    assert [event async for event in handle.events()] == []


def test_the_progress_node_is_the_one_whose_bar_moved_last():
    run = PromptRun("p", PROMPT)
    assert run.progress_node is None
    run.apply(Event("executing", {"prompt_id": "p", "node": "2"}))
    assert run.progress_node is None  # running, but no bar yet
    run.apply(Event("progress", {"prompt_id": "p", "node": "2", "value": 3, "max": 4}))
    run.apply(Event("executing", {"prompt_id": "p", "node": "3"}))
    assert run.progress_node == "2" and run.current_node == "3"
    assert (run.nodes["2"].value, run.nodes["2"].max) == (3, 4)


async def test_a_file_the_server_will_not_serve_is_missing_and_the_others_arrive():
    connector = Connector("http://127.0.0.1:1", client=FlakyViews("http://127.0.0.1:1"))
    handle = follow_one(connector)
    connector.dispatch(Event("execution_start", {"prompt_id": "p"}))
    connector.dispatch(Event("execution_success", {"prompt_id": "p"}))
    result = await handle.result(timeout=5)

    assert result.status == RunStatus.SUCCESS
    assert [(f.node_id, f.filename, f.data) for f in result.files] == [
        ("3", "kept.png", b"\x89PNG kept")
    ]
    assert result.missing == ["node 3: gone.png could not be fetched (ComfyUI answered 404: )"]
    with pytest.raises(OutputsMissing, match=r"prompt p succeeded, but 1 output file\(s\)"):
        result.raise_for_status()
    await connector.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def serve_websocket_later(port: int, delay: float) -> web.AppRunner:
    """After `delay` s, a server on `port` whose /ws accepts a client (a ComfyUI that was
    still starting)."""

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        async for _ in socket_:
            pass
        return socket_

    await asyncio.sleep(delay)
    app = web.Application()
    app.router.add_get("/ws", ws)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_connect_waits_for_a_server_that_is_still_starting():
    port = free_port()
    starting = asyncio.create_task(serve_websocket_later(port, 0.4))
    client = ComfyClient(f"http://127.0.0.1:{port}")
    try:
        await client.connect(wait=10)
        assert client._ws is not None and not client._ws.closed
    finally:
        await client.close()
        await (await starting).cleanup()


async def test_connect_gives_up_after_its_wait():
    client = ComfyClient(f"http://127.0.0.1:{free_port()}")
    began = time.monotonic()
    with pytest.raises(ServerUnavailable, match="cannot reach ComfyUI"):
        await client.connect(wait=0.3)
    assert 0.3 <= time.monotonic() - began < 5
    with pytest.raises(ServerUnavailable):
        await client.connect()  # no wait: one try


def test_failure_and_rejection_texts_are_one_line_with_a_lead_of_the_callers_choice():
    details = {
        "prompt_id": "p",
        "node_id": "2",
        "node_type": "ImageBlur",
        "exception_type": "ValueError",
        "exception_message": "radius too big\nTip: try a smaller one",
    }
    assert describe_failure(details) == "node 2 (ImageBlur): ValueError: radius too big"
    body = {
        "error": {"message": "Prompt outputs failed validation", "details": ""},
        "node_errors": {
            "3": {"class_type": "LoadImage", "errors": [{"message": "bad file", "details": "x"}]}
        },
    }
    rejected = PromptRejected(400, body)
    assert str(rejected).startswith("prompt rejected: Prompt outputs failed validation; node 3")
    assert describe_rejection(rejected.error, rejected.node_errors, "workflow rejected") == (
        "workflow rejected: Prompt outputs failed validation; node 3 (LoadImage): bad file: x"
    )
