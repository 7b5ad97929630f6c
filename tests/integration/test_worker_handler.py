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
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from runpod_fake import FakeRunpod, WorkerProcess, fake_in_thread, png_bytes, start_worker

from parallel_runs.comfy_process import ComfyProcess
from parallel_runs.runpod_client import RunpodClient
from parallel_runs.runpod_models import JobStatus, WorkerOutput, WorkerProgress

pytestmark = pytest.mark.comfy

KEY = "rpa_integration_key"
EP = "ep-worker"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunpod]:
    with fake_in_thread(api_key=KEY, endpoints=(EP,), take_poll=1.0, stop_poll=1.0) as f:
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

    output = WorkerOutput.model_validate(final.output)
    assert [i.type for i in output.images] == ["base64"] and output.errors is None
    with Image.open(io.BytesIO(base64.b64decode(output.images[0].data))) as image:
        assert image.format == "PNG" and image.size == (64, 48)
        assert image.convert("RGB").getpixel((10, 10)) == (0x33, 0x66, 0xCC)


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


async def test_worker_log_has_no_secrets(worker):
    assert KEY not in worker.log_text()


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
