"""The worker side end to end: the unmodified `runpod` worker loop (subprocess) running our
handler against a real ComfyUI, fed by the loopback fake of RunPod's control plane, driven
through RunpodClient exactly as the plugin drives a real endpoint."""

from __future__ import annotations

import asyncio
import base64
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from runpod_fake import FakeRunpod, WorkerProcess, fake_in_thread, png_bytes, start_worker

from parallel_runs_node.parallel_runs.client.comfy_client import Event
from parallel_runs_node.parallel_runs.client.process import ComfyProcess
from parallel_runs_node.parallel_runs.client.prompt_run import PromptRun
from parallel_runs_node.parallel_runs.runpod.client import RunpodClient
from parallel_runs_node.parallel_runs.runpod.models import (
    MAX_PREVIEW_CHARS,
    JobStatus,
    WorkerOutput,
    WorkerPreview,
    WorkerProgress,
)
from parallel_runs_node.parallel_runs.worker.handler import ProgressReporter

pytestmark = pytest.mark.comfy

KEY = "rpa_integration_key"
EP = "ep-worker"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunpod]:
    # long polls answer within 0.5 s: on SIGTERM the worker waits for them
    with fake_in_thread(api_key=KEY, endpoints=(EP,), take_poll=0.5, stop_poll=0.5) as f:
        yield f


@pytest.fixture(scope="module")
def worker(
    fake: FakeRunpod, comfy_server: ComfyProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = start_worker(
        fake,
        comfy_server.url,
        log,
        endpoint_id=EP,
        extra_env={"PARALLEL_RUNS_PROGRESS_INTERVAL": "0.2"},
    )
    deadline = time.monotonic() + 60
    while not fake.requests or not any("/job-take/" in path for _, path, _ in fake.requests):
        assert process.proc.poll() is None, process.log_text()
        assert time.monotonic() < deadline, f"worker never polled for jobs:\n{process.log_text()}"
        time.sleep(0.2)
    yield process
    process.stop()
    assert process.proc.returncode is not None


@pytest.fixture
async def client(worker: WorkerProcess, fake: FakeRunpod) -> AsyncIterator[RunpodClient]:
    async with aiohttp.ClientSession() as session:
        yield RunpodClient(session, KEY, fake.base_url)


def slow_prompt(prefix: str, seconds: float, steps: int, width: int = 64, height: int = 48):
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": 0x3366CC},
        },
        "2": {
            "class_type": "ParallelRunsSlowPassthrough",
            "inputs": {"image": ["1", 0], "seconds": seconds, "steps": steps},
        },
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


async def follow(
    client: RunpodClient, job_id: str, timeout: float = 60.0
) -> tuple[JobStatus, list[Any]]:
    """Poll like the plugin does; returns the final status and every progress value seen."""
    seen: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await client.status(EP, job_id)
        if status.is_final:
            return status, seen
        if status.status == "IN_PROGRESS" and status.output is not None:
            seen.append(status.output)
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish; last status {status}")


async def test_job_reports_progress_and_returns_the_image(client, fake, worker):
    queued = await client.run(EP, {"workflow": slow_prompt(f"w{uuid.uuid4().hex[:8]}", 2.0, 16)})
    final, seen = await follow(client, queued.id)

    assert final.status == "COMPLETED", (final, worker.log_text()[-3000:])
    progress = [WorkerProgress.model_validate(p) for p in seen]
    slow = [p for p in progress if p.node == "2" and p.max == 16]
    assert slow, f"no progress of the slow node in {seen}"
    assert any(0 < (p.value or 0) < 16 for p in slow)  # seen mid-run, not only at the end
    assert any(p.text and "step" in p.text.get("2", "") for p in progress)
    assert "1" in max(progress, key=lambda p: p.seq).nodes_done
    posted = sorted(p["seq"] for p in fake.job(queued.id).progress)
    assert posted == list(range(1, len(posted) + 1))  # numbered, none lost
    # Rate limited: 16 steps x (bar + text) + node changes would be ~40 posts without it.
    assert len(fake.job(queued.id).progress) < 20

    # the slow node's preview (the image it holds) rides along while it runs
    previews = [WorkerPreview.model_validate(p.preview) for p in slow if p.preview]
    assert previews, f"no preview in {len(seen)} progress values"
    assert {(p.node, p.image_type) for p in previews} == {("2", "image/jpeg")}
    with Image.open(io.BytesIO(base64.b64decode(previews[0].data))) as image:
        assert image.format == "JPEG" and image.size == (64, 48)
        pixel = image.convert("RGB").getpixel((10, 10))
        assert all(abs(a - b) <= 8 for a, b in zip(pixel, (0x33, 0x66, 0xCC), strict=True))

    output = WorkerOutput.model_validate(final.output)
    assert [i.type for i in output.images] == ["base64"] and output.errors is None
    assert [i.node for i in output.images] == ["3"]  # the SaveImage that wrote it
    with Image.open(io.BytesIO(base64.b64decode(output.images[0].data))) as image:
        assert image.format == "PNG" and image.size == (64, 48)
        assert image.convert("RGB").getpixel((10, 10)) == (0x33, 0x66, 0xCC)


async def test_each_output_names_its_node(client, worker):
    prompt = slow_prompt(f"a{uuid.uuid4().hex[:6]}", 0.0, 1, width=8, height=8)
    prompt["4"] = {
        "class_type": "SaveImage",
        "inputs": {"images": ["1", 0], "filename_prefix": f"b{uuid.uuid4().hex[:6]}"},
    }
    prompt["1"]["inputs"]["batch_size"] = 2
    final, _ = await follow(client, (await client.run(EP, {"workflow": prompt})).id)
    assert final.status == "COMPLETED", (final, worker.log_text()[-3000:])
    nodes = [i.node for i in WorkerOutput.model_validate(final.output).images]
    assert sorted(nodes) == ["3", "3", "4", "4"]


# --------------------------------------------------------------------------- reporter


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def preview_event(image: bytes, node: str | None = "2", kind: int = 4) -> Event:
    data = {"image_type": "image/jpeg", "image": image, "prompt_id": "p"}
    if node is not None and kind == 4:
        data["node"] = node
    return Event("preview", data)


@dataclass
class Reporting:
    """A prompt run and the reporter posting it, fed as the job's follow loop feeds them."""

    reporter: ProgressReporter

    def apply(self, event: Event) -> None:
        self.reporter.run.apply(event)  # what the connector does with each event
        self.reporter.update()  # what the follow loop does after it

    def flush(self) -> None:
        self.reporter.update()  # what the follow loop does after a quiet interval


def reporting(posts: list, clock: Clock, **options: float) -> Reporting:
    return Reporting(ProgressReporter(PromptRun("p"), posts.append, clock=clock, **options))


def test_reporter_posts_each_new_preview_rate_limited_and_holds_it_a_while():
    clock, posts = Clock(), []
    reporter = reporting(posts, clock, interval=0.5, preview_interval=1.0, preview_hold=3.0)
    reporter.apply(Event("executing", {"node": "2", "prompt_id": "p"}))  # posted at once
    clock.now = 0.1
    reporter.apply(preview_event(b"\xff\xd8\xffA"))
    assert len(posts) == 1 and "preview" not in posts[0]  # within the progress interval
    clock.now = 0.6
    reporter.flush()
    assert posts[-1]["preview"] == {
        "node": "2",
        "image_type": "image/jpeg",
        "data": base64.b64encode(b"\xff\xd8\xffA").decode(),
    }
    clock.now = 0.7
    reporter.apply(preview_event(b"\xff\xd8\xffB"))  # within a second of the first preview
    clock.now = 1.2
    reporter.apply(Event("progress", {"node": "2", "value": 1, "max": 4}))
    assert posts[-1]["value"] == 1 and posts[-1]["preview"]["data"].endswith("QQ==")  # "A"
    clock.now = 1.7
    reporter.flush()
    assert base64.b64decode(posts[-1]["preview"]["data"]).endswith(b"B")
    count = len(posts)
    clock.now = 2.3
    reporter.apply(preview_event(b"\xff\xd8\xffB"))  # unchanged: nothing to post
    reporter.flush()
    assert len(posts) == count
    clock.now = 3.0
    reporter.apply(Event("progress", {"node": "2", "value": 2, "max": 4}))
    assert base64.b64decode(posts[-1]["preview"]["data"]).endswith(b"B")  # still held
    clock.now = 4.8  # held for 3 s: then progress goes without it
    reporter.apply(Event("progress", {"node": "2", "value": 3, "max": 4}))
    assert "preview" not in posts[-1]
    assert [p["seq"] for p in posts] == list(range(1, len(posts) + 1))


def test_reporter_posts_what_the_run_shows_and_nothing_before_it_starts():
    clock, posts = Clock(), []
    reporter = reporting(posts, clock, interval=0.0)
    reporter.apply(Event("execution_start", {"prompt_id": "p"}))
    reporter.flush()
    assert posts == []  # nothing to show yet
    reporter.apply(Event("execution_cached", {"prompt_id": "p", "nodes": ["1"]}))
    reporter.apply(Event("executing", {"prompt_id": "p", "node": "2"}))
    reporter.apply(Event("progress", {"prompt_id": "p", "node": "2", "value": 3, "max": 4}))
    reporter.apply(Event("progress_text", {"prompt_id": "p", "node": "2", "text": "x" * 500}))
    reporter.apply(Event("executing", {"prompt_id": "p", "node": "3"}))
    last = posts[-1]
    assert last["executing"] == "3" and (last["node"], last["value"], last["max"]) == ("2", 3, 4)
    assert last["nodes_done"] == ["1", "2"] and len(last["text"]["2"]) == 200
    count = len(posts)
    reporter.flush()
    assert len(posts) == count  # nothing changed: nothing posted
    reporter.apply(Event("executing", {"prompt_id": "p", "node": "9" * 100}))
    assert len(posts) == count and reporter.reporter.refused == 1  # beyond the contract


def test_reporter_skips_oversized_previews_and_names_legacy_ones_by_executing_node():
    clock, posts = Clock(), []
    reporter = reporting(posts, clock, interval=0.0, preview_interval=0.0)
    reporter.apply(Event("executing", {"node": "7", "prompt_id": "p"}))
    reporter.apply(preview_event(b"\xff" * (MAX_PREVIEW_CHARS * 3 // 4 + 3)))
    assert all("preview" not in p for p in posts)
    reporter.apply(preview_event(b"\xff\xd8\xffC", kind=1))  # type 1: no node, no prompt
    assert posts[-1]["preview"]["node"] == "7"


async def test_uploaded_image_is_used(client, worker):
    name = f"up_{uuid.uuid4().hex[:8]}.png"
    source = base64.b64encode(png_bytes(20, 10, (10, 20, 30))).decode()
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
    }
    job_input = {"workflow": prompt, "images": [{"name": name, "image": source}]}
    final, _ = await follow(client, (await client.run(EP, job_input)).id)

    assert final.status == "COMPLETED", (final, worker.log_text()[-3000:])
    data = WorkerOutput.model_validate(final.output).images[0].data
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        assert image.size == (20, 10)
        assert image.convert("RGB").getpixel((0, 0)) == (245, 235, 225)


async def comfy_json(url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(f"{url}{path}") as response:
        return await response.json()


async def test_cancel_mid_run_interrupts_comfyui(client, fake, worker, comfy_server):
    prefix = f"cancel{uuid.uuid4().hex[:8]}"
    queued = await client.run(EP, {"workflow": slow_prompt(prefix, 30.0, 60)})
    deadline = time.monotonic() + 30
    while True:  # wait until the slow node is really running on ComfyUI
        status = await client.status(EP, queued.id)
        if isinstance(status.output, dict) and status.output.get("node") == "2":
            break
        assert time.monotonic() < deadline, (status, worker.log_text()[-3000:])
        await asyncio.sleep(0.1)

    assert (await client.cancel(EP, queued.id)).status == "CANCELLED"

    # ComfyUI stops the prompt long before its 30 s are up, and records it as interrupted.
    deadline = time.monotonic() + 15
    entry = None
    while entry is None:
        assert time.monotonic() < deadline, worker.log_text()[-3000:]
        await asyncio.sleep(0.2)
        history = await comfy_json(comfy_server.url, "/history?max_items=20")
        entry = next(
            (
                item
                for item in history.values()
                if item["prompt"][2].get("3", {}).get("inputs", {}).get("filename_prefix") == prefix
            ),
            None,
        )
    events = [name for name, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in events and "execution_success" not in events
    assert (await comfy_json(comfy_server.url, "/queue"))["queue_running"] == []
    assert (await client.status(EP, queued.id)).status == "CANCELLED"
    assert fake.job(queued.id).results_posted == 0  # the SDK posted no result for it
    assert "Job stopped" in worker.log_text() or "stopped" in worker.log_text().lower()


@pytest.mark.parametrize(
    ("job_input", "expected"),
    [
        ({"workflow": {}}, "invalid input: workflow"),
        (
            {"prompt": {"1": {"class_type": "EmptyImage"}}},
            "invalid input: workflow: Field required",
        ),
        (
            {"workflow": {"1": {"class_type": "EmptyImage"}}, "images": [{"name": "../x.png"}]},
            "invalid input: images.0",
        ),
        (
            {"workflow": {"1": {"class_type": "NoSuchNode", "inputs": {}}}},
            "workflow validation failed",
        ),
        (
            {
                "workflow": {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}},
                "images": [{"name": "x.png", "image": "not base64!"}],
            },
            "not valid base64",
        ),
    ],
)
async def test_bad_input_fails_with_a_clear_error(client, worker, job_input, expected):
    final, _ = await follow(client, (await client.run(EP, job_input)).id)
    assert final.status == "FAILED"
    assert expected in (final.error or ""), final.error
    assert "Traceback" not in (final.error or "")


async def test_worker_log_has_no_secrets(client, worker, fake):
    """The worker's own secrets: its RunPod worker key, and a comfy.org key a job brings."""
    comfy_org_key = "comfyorg-secret-0123456789abcdef"
    job_input = {"workflow": slow_prompt("secret", 0.1, 1), "api_key_comfy_org": comfy_org_key}
    final, _ = await follow(client, (await client.run(EP, job_input)).id)
    assert final.status == "COMPLETED", (final, worker.log_text()[-3000:])
    log = worker.log_text()
    assert "Job" in log or "job" in log  # the worker did log about the job
    assert comfy_org_key not in log and fake.worker_key not in log


def test_worker_stops_gracefully_on_sigterm(
    tmp_path: Path, fake: FakeRunpod, comfy_server: ComfyProcess
):
    process = start_worker(fake, comfy_server.url, tmp_path / "w.log", endpoint_id=EP, pod_id="p2")
    deadline = time.monotonic() + 30
    while "p2" not in fake.pings:  # the SDK's heartbeat process is up too
        assert time.monotonic() < deadline and process.proc.poll() is None, process.log_text()
        time.sleep(0.2)
    process.stop(grace=10)
    assert process.proc.returncode == 0, process.log_text()[-2000:]
    pings = fake.pings.count("p2")
    time.sleep(2.5)  # RUNPOD_PING_INTERVAL is 1 s: a surviving heartbeat would show up
    assert fake.pings.count("p2") == pings
