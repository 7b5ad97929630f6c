"""A websocket client whose feature flags are not an object (a string, a list, a number, null)
must not take ComfyUI down: progress text to it, or to everyone, still goes out (in the legacy
layout, as to a client without flags), and every other client keeps its own layout."""

from __future__ import annotations

import asyncio
import json
import struct
import uuid

import aiohttp
import pytest
from graphs import note_text_graph, slow_note_graph

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient
from parallel_runs_node.parallel_runs.client.connector import Connector
from parallel_runs_node.parallel_runs.client.process import ServerState
from parallel_runs_node.parallel_runs.client.prompt_run import RunStatus

pytestmark = pytest.mark.comfy

HOSTILE_FLAGS = ["x", ["supports_progress_text_metadata"], 3, None]
TEXT_FRAME = 3


async def hostile_socket(session: aiohttp.ClientSession, url: str, flags: object):
    """A raw client whose first message announces `flags` as its feature flags."""
    client_id = f"hostile-{uuid.uuid4().hex[:8]}"
    ws = await session.ws_connect(url.replace("http", "ws", 1) + f"/ws?clientId={client_id}")
    await ws.send_str(json.dumps({"type": "feature_flags", "data": flags}))
    return client_id, ws


async def texts_until(ws: aiohttp.ClientWebSocketResponse, wanted: set[str]) -> list[str]:
    """The progress texts (legacy layout) this socket receives, until one starting with each
    of `wanted` has come."""
    texts: list[str] = []
    async for message in ws:
        if message.type == aiohttp.WSMsgType.BINARY:
            (kind,) = struct.unpack(">I", message.data[:4])
            if kind == TEXT_FRAME:
                texts.append(legacy_text(message.data[4:])[1])
                if all(any(t.startswith(w) for t in texts) for w in wanted):
                    return texts
        elif message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"websocket ended: {message.type}")
    raise AssertionError("websocket closed before the progress text came")


async def queue(client: ComfyClient, prompt: dict, client_id: str | None = None) -> str:
    """POST /prompt for `client_id` (None: a script without one, whose progress text ComfyUI
    sends to every client)."""
    body = {"prompt": prompt, **({"client_id": client_id} if client_id else {})}
    status, raw = await client.request("POST", "/prompt", json=body)
    assert status == 200, raw
    return json.loads(raw)["prompt_id"]


def legacy_text(payload: bytes) -> tuple[str, str]:
    (size,) = struct.unpack(">I", payload[:4])
    return payload[4 : 4 + size].decode(), payload[4 + size :].decode()


async def test_non_object_feature_flags_do_not_stop_comfyui(comfy_server):
    url = comfy_server.url
    async with aiohttp.ClientSession() as session, ComfyClient(url) as good:
        sockets = [await hostile_socket(session, url, flags) for flags in HOSTILE_FLAGS]
        await asyncio.sleep(0.3)  # the server reads the first messages
        # one prompt queued by a hostile client (progress text goes to it alone) and one
        # by a script without a client id (progress text goes to everyone)
        own_id, _ = sockets[0]
        mine = await queue(good, note_text_graph("own {width}"), own_id)
        shared = await queue(good, slow_note_graph("shared {height}", output="size_text"))
        received = await asyncio.wait_for(
            asyncio.gather(
                texts_until(sockets[0][1], {"own 64", "shared 32"}),  # its own prompt too
                *(texts_until(ws, {"shared 32"}) for _, ws in sockets[1:]),
            ),
            60,
        )
        for _, ws in sockets:
            await ws.close()
        assert all(not any(t.startswith("own") for t in texts) for texts in received[1:])
        # both prompts ran to the end, and ComfyUI still runs, serves and executes
        for prompt_id in (mine, shared):
            entry = await good.history(prompt_id)
            assert entry is not None and entry["status"]["status_str"] == "success", entry
        # the session's server is shared: leave no prompt without a client in its history
        await good.request("POST", "/history", json={"delete": [mine, shared]})
        health = await good.call_json("GET", "/parallel/health")
        assert health["features"]["scoped_progress_text"]["enabled"] is True
    async with Connector(url) as connector:
        result = await connector.run(slow_note_graph("after", output="size_text"), timeout=30)
    assert result.status == RunStatus.SUCCESS
    assert comfy_server.poll() == ServerState.READY
