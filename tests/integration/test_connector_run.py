"""The connector against a real ComfyUI: parallel prompts on one websocket, errors, cancel,
timeouts, uploads with clean-up, and the CLI end to end."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from graphs import fresh_color, slow_note_graph
from PIL import Image

from parallel_runs_node.parallel_runs.client.connector import Connector
from parallel_runs_node.parallel_runs.client.errors import (
    PromptFailed,
    PromptRejected,
    PromptTimeout,
)
from parallel_runs_node.parallel_runs.client.prompt_run import RunStatus

pytestmark = pytest.mark.comfy

REPO = Path(__file__).resolve().parents[2]


def rgb(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF


def image_graph(color: int, note: str = "", seconds: float = 0.3, steps: int = 3) -> dict:
    """A 16x8 image of `color` through Slow Passthrough and Progress Note into SaveImage."""
    return slow_note_graph(note, seconds=seconds, steps=steps, width=16, height=8, color=color)


def load_graph(image: str, invert: bool = True) -> dict:
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "up"}},
    }
    graph["2"] = {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}}
    if not invert:
        graph["3"]["inputs"]["images"] = ["1", 0]
    return graph


def png(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def pixel(data: bytes) -> tuple[int, int, int]:
    return Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))


def inverted(color: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(255 - c for c in color)


def about(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Equal within one step: ComfyUI truncates float pixels when it saves them."""
    return all(abs(x - y) <= 1 for x, y in zip(a, b, strict=True))


async def collect(handle) -> list:
    return [event async for event in handle.events()]


async def test_parallel_prompts_get_only_their_own_events_and_outputs(comfy_server):
    colors = [fresh_color() for _ in range(3)]
    async with Connector(comfy_server.url) as connector:
        handles = [
            await connector.submit(image_graph(c, note=f"note-{i}"), ephemeral=True)
            for i, c in enumerate(colors)
        ]
        streams = await asyncio.gather(*(collect(h) for h in handles))
        results = await asyncio.gather(*(h.wait(60) for h in handles))

    for i, (handle, events, result) in enumerate(zip(handles, streams, results, strict=True)):
        ids = {e.data.get("prompt_id") for e in events if isinstance(e.data, dict)}
        assert ids <= {handle.prompt_id}, "another prompt's events leaked in"
        texts = [(e.data["node"], e.data["text"]) for e in events if e.type == "progress_text"]
        assert ("3", f"note-{i}") in texts
        assert [t for n, t in texts if n == "2"][-1].startswith("step 3/3")
        assert handle.run.nodes["2"].value == handle.run.nodes["2"].max == 3
        assert handle.run.fraction() == 1.0
        assert result.status == RunStatus.SUCCESS
        assert result.history["status"]["status_str"] == "success"
        (file,) = result.files
        assert (file.node_id, file.type) == ("4", "output")
        assert pixel(file.data) == rgb(colors[i])


async def test_rejected_prompt_names_node_and_reason(comfy_server):
    async with Connector(comfy_server.url) as connector:
        with pytest.raises(PromptRejected) as caught:
            await connector.submit(load_graph("no-such-file-" + uuid.uuid4().hex + ".png"))
    message = str(caught.value)
    assert "node 1 (LoadImage)" in message
    assert "Invalid image file" in message
    assert "\n" not in message


async def test_runtime_error_is_readable(comfy_server):
    """A file that exists but is no image passes validation and fails inside LoadImage."""
    async with Connector(comfy_server.url, input_dir=comfy_server.input_directory) as connector:
        upload = await connector.upload(b"not a png", "broken.png", ephemeral=True)
        handle = await connector.submit(load_graph(upload.reference), ephemeral=True)
        result = await handle.result(60)
        assert result.status == RunStatus.ERROR
        with pytest.raises(PromptFailed) as caught:
            result.raise_for_status()
    error = caught.value
    assert (error.node_id, error.node_type) == ("1", "LoadImage")
    assert "cannot identify image file" in str(error)
    assert str(error).startswith(f"prompt {handle.prompt_id} failed in node 1 (LoadImage): ")


async def wait_until_running(handle, timeout: float = 30) -> None:
    async def poll() -> None:
        while "2" not in handle.run.nodes or handle.run.nodes["2"].value < 1:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_cancel_running_and_pending_prompts_while_another_succeeds(comfy_server):
    async with Connector(comfy_server.url) as connector:
        slow = await connector.submit(image_graph(fresh_color(), seconds=5, steps=10))
        other = await connector.submit(image_graph(fresh_color()))
        pending = await connector.submit(image_graph(fresh_color()))
        await wait_until_running(slow)
        await pending.cancel()  # still queued behind `slow`
        await slow.cancel()
        slow_result, other_result, pending_result = await asyncio.gather(
            slow.result(60), other.result(60), pending.result(60)
        )
        pending_history = await connector.client.history(pending.prompt_id)

    assert slow_result.status == RunStatus.INTERRUPTED
    assert slow_result.error["node_id"] == "2"
    assert slow.run.nodes["2"].value < 10
    assert other_result.status == RunStatus.SUCCESS and len(other_result.files) == 1
    assert pending_result.status == RunStatus.INTERRUPTED
    assert "removed from the queue" in pending_result.error["message"]
    assert pending_history is None


async def test_timeout_raises_and_interrupts(comfy_server):
    async with Connector(comfy_server.url) as connector:
        handle = await connector.submit(image_graph(fresh_color(), seconds=5, steps=10))
        await wait_until_running(handle)
        with pytest.raises(PromptTimeout, match=r"did not finish within 0.5 s \(cancelled it\)"):
            await handle.wait(timeout=0.5)
        result = await handle.result(30)
    assert result.status == RunStatus.INTERRUPTED
    assert handle.run.nodes["2"].value < 10


async def test_upload_run_and_clean_up(comfy_server):
    color = rgb(fresh_color())
    input_dir = comfy_server.input_directory
    async with Connector(comfy_server.url, input_dir=input_dir) as connector:
        upload = await connector.upload(png(color), "photo.png", subfolder="cases", ephemeral=True)
        assert upload.name != "photo.png" and upload.name.endswith(".png")
        stored = input_dir / "cases" / upload.name
        assert stored.read_bytes() == png(color)
        handle = await connector.submit(load_graph(upload.reference), ephemeral=True)
        result = await handle.wait(60)
        (file,) = result.files
        assert about(pixel(file.data), inverted(color))
        assert await connector.cleanup() == []
        assert not stored.exists()
        assert await connector.client.history(handle.prompt_id) is None


async def test_remote_server_keeps_ephemeral_uploads_and_says_so(comfy_server):
    async with Connector(comfy_server.url) as connector:  # input directory unknown
        upload = await connector.upload(png((1, 2, 3)), "remote.png", ephemeral=True)
        notes = await connector.cleanup()
    assert notes == [f"{upload.reference} stays on the server (no delete route)"]
    stored = comfy_server.input_directory / upload.name
    assert stored.is_file()
    stored.unlink()


async def test_ui_workflow_is_converted_and_run(comfy_server):
    color = fresh_color()
    workflow = ui_workflow(color)
    async with Connector(comfy_server.url) as connector:
        result = await connector.run(workflow, timeout=60, ephemeral=True)
    (file,) = result.files
    assert pixel(file.data) == rgb(color)


def ui_workflow(color: int) -> dict:
    """What the frontend saves for EmptyImage -> SaveImage (widgets in widgets_values)."""
    return {
        "last_node_id": 2,
        "last_link_id": 1,
        "nodes": [
            {
                "id": 1,
                "type": "EmptyImage",
                "pos": [0, 0],
                "size": [300, 130],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [],
                "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0}],
                "properties": {"Node name for S&R": "EmptyImage"},
                "widgets_values": [16, 8, 1, color],
            },
            {
                "id": 2,
                "type": "SaveImage",
                "pos": [400, 0],
                "size": [300, 300],
                "flags": {},
                "order": 1,
                "mode": 0,
                "inputs": [{"name": "images", "type": "IMAGE", "link": 1}],
                "outputs": [],
                "properties": {"Node name for S&R": "SaveImage"},
                "widgets_values": ["ui-workflow"],
            },
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parallel_runs", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_cli_runs_workflows_and_writes_outputs(comfy_server, tmp_path):
    colors = [fresh_color(), fresh_color()]
    paths = []
    for i, color in enumerate(colors):
        paths.append(tmp_path / f"wf{i}.json")
        paths[-1].write_text(json.dumps(image_graph(color, note=f"cli {i}")))
    out = tmp_path / "out"
    done = cli("run", *map(str, paths), "--server", comfy_server.url, "--out", str(out))
    assert done.returncode == 0, done.stderr
    files = sorted(out.iterdir())
    assert sorted(pixel(f.read_bytes()) for f in files) == sorted(rgb(c) for c in colors)
    assert "wf0: done in" in done.stdout and "wf1: done in" in done.stdout
    progress = done.stderr.splitlines()  # not a TTY: one plain line per update
    assert any(line.startswith("wf0 [") and "node 2" in line for line in progress)
    assert all("\x1b" not in line for line in progress)


def test_cli_uploads_inputs_and_reports_failures(comfy_server, tmp_path):
    color = rgb(fresh_color())
    (tmp_path / "in.png").write_bytes(png(color))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(load_graph("in.png")))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"1": {"class_type": "NoSuchNode", "inputs": {}}}))
    out = tmp_path / "out"
    done = cli(
        "run", str(good), str(unknown), "--server", comfy_server.url,
        "--input", str(tmp_path / "in.png"), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: unknown: prompt rejected: ")
    assert "NoSuchNode" in errors[0]
    (file,) = out.iterdir()
    assert about(pixel(file.read_bytes()), inverted(color))
    uploaded = comfy_server.input_directory / "in.png"  # a remote server keeps its name
    assert uploaded.read_bytes() == png(color)
    uploaded.unlink()


def test_cli_converts_ui_workflows_and_names_unknown_node_types(comfy_server, tmp_path):
    color = fresh_color()
    good = tmp_path / "ui-good.json"
    good.write_text(json.dumps(ui_workflow(color)))
    broken = ui_workflow(fresh_color())
    broken["nodes"][1]["type"] = "NoSuchSaveNode"
    bad = tmp_path / "ui-bad.json"
    bad.write_text(json.dumps(broken))
    out = tmp_path / "out"
    done = cli("run", str(good), str(bad), "--server", comfy_server.url, "--out", str(out))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [errors[0]] and errors[0].startswith("error: ui-bad: node 2 (NoSuchSaveNode)")
    (file,) = out.iterdir()
    assert pixel(file.read_bytes()) == rgb(color)


def test_cli_spreads_workflows_over_several_servers(comfy_server, comfy_server_newest, tmp_path):
    colors = [fresh_color() for _ in range(4)]
    paths = []
    for i, color in enumerate(colors):
        paths.append(tmp_path / f"spread{i}.json")
        paths[-1].write_text(json.dumps(image_graph(color, note=f"spread {i}")))
    out = tmp_path / "out"
    servers = ("--server", comfy_server.url, "--server", comfy_server_newest.url)
    done = cli("run", *map(str, paths), *servers, "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(pixel(f.read_bytes()) for f in out.iterdir()) == sorted(map(rgb, colors))
    lines = done.stdout.splitlines()
    on = {url: sum(f"done on {url} in" in line for line in lines) for url in servers[1::2]}
    assert on == {comfy_server.url: 2, comfy_server_newest.url: 2}, done.stdout
