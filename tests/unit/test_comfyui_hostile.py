"""A ComfyUI server that answers with hostile output names and an oversized file: names are made
safe, nothing is written outside the output folder, the big file is not fetched past the cap
and the prompt ends saying which file was refused. The server is a fault injector (only the
routes a prompt's run touches); the relay side is the real offload routes on a bare app."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from offload_harness import offload_app
from PIL import Image

CAP = 50_000  # bytes an output file may have (the executor's cap, lowered for the test)


def png(size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (9, 99, 199)).save(out, format="PNG")
    return out.getvalue()


HOSTILE = [
    {"filename": "../../../escape.png", "subfolder": "", "type": "output"},
    {"filename": "nested.png", "subfolder": "../../..", "type": "output"},
    {"filename": "CON.png", "subfolder": "", "type": "output"},
    {"filename": "huge.png", "subfolder": "", "type": "output"},
]


class HostileComfy:
    """Takes one prompt, runs it at once, and lists HOSTILE as its outputs."""

    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.history: dict[str, Any] = {}
        self.served: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        app.router.add_get("/object_info", self.object_info)
        app.router.add_post("/prompt", self.prompt)
        app.router.add_get("/queue", self.queue)
        app.router.add_get("/history/{id}", self.entry)
        app.router.add_get("/view", self.view)
        return app

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        async for _ in socket:
            pass
        return socket

    async def object_info(self, _request: web.Request) -> web.Response:
        spec = {"input": {"required": {}}, "output_node": False}
        return web.json_response({"EmptyImage": spec, "SaveImage": {**spec, "output_node": True}})

    async def prompt(self, request: web.Request) -> web.Response:
        prompt_id = (await request.json()).get("prompt_id") or str(uuid.uuid4())
        asyncio.get_running_loop().create_task(self.run(prompt_id))
        return web.json_response({"prompt_id": prompt_id, "number": 1, "node_errors": {}})

    async def run(self, prompt_id: str) -> None:
        await asyncio.sleep(0.2)
        self.history[prompt_id] = {
            "outputs": {"2": {"images": HOSTILE}},
            "status": {"status_str": "success", "completed": True, "messages": []},
        }
        for event, data in (
            ("execution_start", {"prompt_id": prompt_id}),
            ("executed", {"prompt_id": prompt_id, "node": "2", "output": {"images": HOSTILE}}),
            ("execution_success", {"prompt_id": prompt_id}),
        ):
            for socket in self.sockets:
                await socket.send_json({"type": event, "data": data})

    async def queue(self, _request: web.Request) -> web.Response:
        return web.json_response({"queue_running": [], "queue_pending": []})

    async def entry(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["id"]
        found = self.history.get(prompt_id)
        return web.json_response({prompt_id: found} if found else {})

    async def view(self, request: web.Request) -> web.StreamResponse:
        name = request.query["filename"]
        self.served.append(name)
        if name != "huge.png":
            return web.Response(body=png(), content_type="image/png")
        response = web.StreamResponse()  # no Content-Length: only reading tells its size
        await response.prepare(request)
        for _ in range(200):  # 200 x 64 KB, far past the cap
            await response.write(b"\0" * 65536)
        await response.write_eof()
        return response


@pytest.fixture
async def hostile_url() -> Any:
    server = TestServer(HostileComfy().app(), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


async def test_hostile_output_names_and_an_oversized_file(tmp_path: Path, hostile_url: str):
    env = {"PARALLEL_RUNS_COMFYUI_SERVERS": f"evil={hostile_url}"}
    options = {"max_file_bytes": CAP}
    async with offload_app(tmp_path / "a", env, comfyui_options=options) as relay:
        prompt = {
            "1": {"class_type": "EmptyImage", "inputs": {}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0]}},
        }
        prompt_id = await relay.offload_prompt(prompt, executor="comfyui:evil")
        record = await relay.finish(prompt_id, timeout=30)
    assert record.status == "error" and record.error.type == "result_refused", record.error
    assert "huge.png" in record.error.message and "3 file(s) saved" in record.error.message
    folder = tmp_path / "a" / "output" / "parallel-runs" / prompt_id
    saved = sorted(p.name for p in folder.iterdir())
    assert saved == ["_CON.png", "escape.png", "nested.png"]
    everything = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix == ".png"]
    assert all(folder in p.parents for p in everything)  # nothing landed anywhere else
    assert all(p.stat().st_size < CAP for p in everything)
