"""Prompts run on other ComfyUI servers: B is a stock ComfyUI (no package), C is one with this
package (its slow node gives a prompt that takes a while). The relay side ("A") is the offload
routes on a bare app, with B and C named in PARALLEL_RUNS_COMFYUI_SERVERS."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from early_servers import Early, early_fixture
from graphs import fresh_color, slow_note_graph
from offload_harness import Harness, offload_app, wait_until
from PIL import Image

from conftest import find_comfyui
from parallel_runs_node.parallel_runs.client.process import ComfyProcess


@early_fixture()
@contextlib.contextmanager
def stock_b(early: Early) -> Iterator[ComfyProcess]:
    """A ComfyUI without this package: the remote needs nothing of ours. Started ahead of the
    module, in the background."""
    base = early.path
    for sub in ("custom_nodes", "input", "output", "temp", "user"):
        (base / sub).mkdir()
    server = ComfyProcess(
        comfy_dir=find_comfyui(),
        base_directory=base,
        python=sys.executable,
        log_path=base / "comfyui.log",
    ).start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def relay_a(tmp_path, stock_b, comfy_server) -> AsyncIterator[Harness]:
    env = {"PARALLEL_RUNS_COMFYUI_SERVERS": f"b={stock_b.url},c={comfy_server.url}"}
    async with offload_app(tmp_path / "a", env) as harness:
        yield harness


def stock_prompt(width: int = 24) -> dict[str, Any]:
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": 16, "batch_size": 1, "color": fresh_color()},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "b"}},
    }


def history_size(server: ComfyProcess) -> int:
    with urllib.request.urlopen(f"{server.url}/history", timeout=10) as answer:
        return len(json.load(answer))


async def test_a_prompt_runs_on_a_stock_comfyui_and_its_output_is_saved_here(relay_a, stock_b):
    prompt_id = await relay_a.offload_prompt(stock_prompt(width=24), executor="comfyui:b")
    record = await relay_a.finish(prompt_id, timeout=60)
    assert record.status == "success", record.error
    assert record.executor == "comfyui:b" and record.job_id
    types = relay_a.server.types(prompt_id)
    assert types.index("execution_start") < types.index("executed")
    assert types.index("executed") < types.index("execution_success")
    assert types[-1] == "executing"
    executed = dict(relay_a.server.of(prompt_id))["executed"]
    assert executed["node"] == "3"  # shown on the node that made it
    (image,) = executed["output"]["images"]
    saved = relay_a.output / image["subfolder"] / image["filename"]
    assert image["subfolder"] == f"parallel-runs/{prompt_id}"
    assert Image.open(saved).size == (24, 16)
    assert all(sid == "tab-1" for _, _, sid in relay_a.server.events)


async def test_input_files_go_to_the_remote_first(relay_a, stock_b):
    picture = io.BytesIO()
    Image.new("RGB", (20, 12), (250, 0, 0)).save(picture, format="PNG")
    (relay_a.base / "input" / "red.png").write_bytes(picture.getvalue())
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "red.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "in"}},
    }
    prompt_id = await relay_a.offload_prompt(prompt, executor="comfyui:b")
    record = await relay_a.finish(prompt_id, timeout=60)
    assert record.status == "success", record.error
    (files,) = record.outputs.values()
    saved = Image.open(relay_a.output / files[0].subfolder / files[0].filename).convert("RGB")
    red, green, blue = saved.getpixel((3, 3))
    assert saved.size == (20, 12) and red < 10 and green == blue == 255  # red, inverted
    uploaded = list(Path(stock_b.base_directory, "temp").glob("red.pr-*.png"))
    assert len(uploaded) == 1  # into its temp folder, which ComfyUI empties when it starts
    assert not list(Path(stock_b.base_directory, "input").glob("red*"))


@pytest.mark.parametrize(
    ("node", "words"),
    [
        ({"class_type": "ParallelRunsSlowPassthrough", "inputs": {"image": ["1", 0]}}, "node 9"),
        (
            {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "nope.safetensors"}},
            "'nope.safetensors'",
        ),
    ],
)
async def test_what_the_server_lacks_is_named_and_nothing_is_queued(relay_a, stock_b, node, words):
    before = history_size(stock_b)
    body = {"prompt": {**stock_prompt(), "9": node}, "client_id": "t", "executor": "comfyui:b"}
    status, answer = await relay_a.post("/parallel/offload/prompt", body)
    assert status == 400, answer
    assert answer["error"]["type"] == "missing_on_server" and words in answer["error"]["message"]
    assert "'b'" in answer["error"]["message"]
    assert relay_a.relay.registry.all() == [] and history_size(stock_b) == before


async def test_a_prompt_the_server_refuses_is_a_clear_error(relay_a):
    prompt = stock_prompt()
    prompt["1"]["inputs"]["width"] = 0  # EmptyImage wants at least 1
    body = {"prompt": prompt, "client_id": "t", "executor": "comfyui:b"}
    status, answer = await relay_a.post("/parallel/offload/prompt", body)
    assert status == 400 and answer["error"]["type"] == "prompt_rejected", answer
    assert "node 1" in answer["error"]["message"] and relay_a.relay.registry.all() == []


async def test_an_unreachable_server_is_a_clear_error_and_nothing_is_kept(tmp_path):
    env = {"PARALLEL_RUNS_COMFYUI_SERVERS": "gone=http://127.0.0.1:9"}
    async with offload_app(tmp_path, env) as harness:
        body = {"prompt": stock_prompt(), "client_id": "t", "executor": "comfyui:gone"}
        status, answer = await harness.post("/parallel/offload/prompt", body)
        assert status == 502 and answer["error"]["type"] == "server_unreachable", answer
        assert "'gone'" in answer["error"]["message"] and harness.relay.registry.all() == []
        listed = await (await harness.client.get("/parallel/executors")).json()
        (gone,) = [e for e in listed["executors"] if e["executor"] == "comfyui:gone"]
        assert gone["health"]["reachable"] is False


async def test_progress_reaches_the_queuing_client_under_the_local_prompt_id(relay_a):
    graph = slow_note_graph("hello", seconds=0.6, steps=4)
    prompt_id = await relay_a.offload_prompt(graph, executor="comfyui:c")
    record = await relay_a.finish(prompt_id, timeout=60)
    assert record.status == "success", record.error
    assert record.job_id != prompt_id  # the remote's own id stays on the record
    sent = relay_a.server.of(prompt_id)
    progress = [d for e, d in sent if e == "progress" and d.get("node") == "2"]
    assert [d["value"] for d in progress][-1] == 4 and progress[0]["max"] == 4
    assert any(e == "progress_state" for e, _ in sent)
    assert ("executing", {"node": "2", "display_node": "2", "prompt_id": prompt_id}) in [
        (e, {k: d[k] for k in ("node", "display_node", "prompt_id") if k in d})
        for e, d in sent
        if e == "executing"
    ]
    foreign = [d for _, d, _ in relay_a.server.events if isinstance(d, dict) and "prompt_id" in d]
    assert {d["prompt_id"] for d in foreign} == {prompt_id}


async def test_stop_ends_a_prompt_running_on_a_server(relay_a, comfy_server):
    graph = slow_note_graph(seconds=30, steps=30)
    prompt_id = await relay_a.offload_prompt(graph, executor="comfyui:c")
    await wait_until(lambda: "progress" in relay_a.server.types(prompt_id), "progress", 30)
    status, answer = await relay_a.post("/parallel/offload/cancel", {"prompt_id": prompt_id})
    assert status == 200 and answer["status"] == "interrupted", answer
    assert relay_a.server.types(prompt_id).count("execution_interrupted") == 1
    job = relay_a.relay.registry.get(prompt_id).job_id

    def on_server() -> bool:
        with urllib.request.urlopen(f"{comfy_server.url}/queue", timeout=10) as queue:
            return job in json.dumps(json.load(queue))

    # the server stops it at its next interruption check (the slow node checks every step)
    await wait_until(lambda: not on_server(), "the prompt to leave the server's queue", 10)


async def test_an_error_on_the_server_names_its_node_for_the_stock_ui(relay_a):
    prompt = stock_prompt()
    prompt["3"]["inputs"]["filename_prefix"] = "../../outside"  # ComfyUI refuses, at run time
    prompt_id = await relay_a.offload_prompt(prompt, executor="comfyui:b")
    record = await relay_a.finish(prompt_id, timeout=60)
    assert record.status == "error" and (record.error.node_id, record.error.node_type) == (
        "3",
        "SaveImage",
    ), record.error
    assert "'b'" in record.error.message and "node 3 (SaveImage)" in record.error.message
    (error,) = [d for e, d in relay_a.server.of(prompt_id) if e == "execution_error"]
    assert (error["node_id"], error["node_type"]) == ("3", "SaveImage")  # the node the UI marks
    assert sorted(error["executed"]) == ["1", "2"]  # what ran before it, as the server said


async def test_stop_takes_a_waiting_prompt_off_the_servers_queue(relay_a, comfy_server):
    first = await relay_a.offload_prompt(slow_note_graph(seconds=6, steps=6), executor="comfyui:c")
    second = await relay_a.offload_prompt(slow_note_graph(seconds=6, steps=6), executor="comfyui:c")
    await wait_until(lambda: "progress" in relay_a.server.types(first), "the first to run", 30)
    job = relay_a.relay.registry.get(second).job_id
    with urllib.request.urlopen(f"{comfy_server.url}/queue", timeout=10) as queue:
        assert job in json.dumps(json.load(queue)["queue_pending"])  # still waiting there
    status, answer = await relay_a.post("/parallel/offload/cancel", {"prompt_id": second})
    assert status == 200 and answer["status"] == "interrupted", answer
    with urllib.request.urlopen(f"{comfy_server.url}/queue", timeout=10) as queue:
        assert job not in json.dumps(json.load(queue))
    assert "execution_start" not in relay_a.server.types(second)  # it never ran
    assert (await relay_a.finish(first, timeout=60)).status == "success"  # the other goes on
