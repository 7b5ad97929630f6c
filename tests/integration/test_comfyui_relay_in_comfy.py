"""A real ComfyUI ("A", the session server) relays a prompt it runs on another ComfyUI server
(the newest-frontend session server, named from a script through A's settings route): each
queuing client gets ComfyUI's own events under A's prompt id, previews in the layout it
negotiated (type 4 with the prompt id, or the legacy type 1), and progress text."""

from __future__ import annotations

import asyncio

import aiohttp
from graphs import slow_note_graph
from offload_harness import events_until

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient


async def queue_on(http: aiohttp.ClientSession, a: str, client: ComfyClient) -> str:
    body = {
        "prompt": slow_note_graph("relayed note", seconds=1.2, steps=4, output="size_text"),
        "client_id": client.client_id,
        "executor": "comfyui:other",
    }
    async with http.post(f"{a}/parallel/offload/prompt", json=body) as answer:
        assert answer.status == 200, await answer.text()
        return (await answer.json())["prompt_id"]


async def test_previews_and_progress_text_in_each_clients_layout(comfy_server, comfy_server_newest):
    a, servers = comfy_server.url, f"{comfy_server.url}/parallel/executors/comfyui"
    async with aiohttp.ClientSession() as http:
        body = {"name": "other", "url": comfy_server_newest.url}
        async with http.post(servers, json=body) as answer:
            assert answer.status == 200, await answer.text()
        try:
            async with (
                ComfyClient(a) as modern,
                ComfyClient(a, feature_flags=None) as legacy,
            ):
                ids = [await queue_on(http, a, modern), await queue_on(http, a, legacy)]
                final = {"execution_success", "execution_error"}
                seen = await asyncio.gather(
                    events_until(modern, ids[0], final, timeout=90),
                    collect_legacy(legacy, ids[1]),
                )
        finally:
            async with http.post(servers, json={"name": "other", "url": None}) as answer:
                assert answer.status == 200
    modern_events, legacy_events = seen
    assert modern_events[-1].type == "execution_success", modern_events[-1]
    previews = [e.data for e in modern_events if e.type == "preview"]
    assert previews and previews[0]["prompt_id"] == ids[0] and previews[0]["node"] == "2"
    texts = [e.data for e in modern_events if e.type == "parallel.progress_text"]
    assert any("relayed note" in t["text"] and t["node"] == "3" for t in texts), texts
    types = [e.type for e in legacy_events]
    assert types[-1] == "execution_success" and "preview" in types
    legacy_preview = next(e.data for e in legacy_events if e.type == "preview")
    assert "prompt_id" not in legacy_preview  # type 1: the image alone, as stock ComfyUI sends


async def collect_legacy(client: ComfyClient, prompt_id: str) -> list:
    """A legacy client's events for its prompt: previews carry no prompt id, so every preview
    between the prompt's start and end is its own (it is this client's only prompt)."""
    seen: list = []
    started = False
    async for event in client.events():
        data = event.data if isinstance(event.data, dict) else {}
        mine = data.get("prompt_id") == prompt_id
        started = started or (mine and event.type == "execution_start")
        if mine or (started and event.type == "preview"):
            seen.append(event)
        if mine and event.type in ("execution_success", "execution_error"):
            return seen
    return seen
