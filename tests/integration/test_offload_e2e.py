"""End to end: ComfyUI A (with the package) offloads a prompt to the fake RunPod control plane,
which the unmodified `runpod` worker loop serves with our handler driving a second real
ComfyUI B. A's websocket client sees ComfyUI's own events under A's prompt id (previews
included), each output node's images on that node, and the results land in A's output folder
where /view serves them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import struct
import uuid
from dataclasses import dataclass, field

import aiohttp
import pytest
from early_servers import Early, early_fixture
from offload_harness import start_comfy_a
from PIL import Image
from runpod_fake import fake_in_thread, png_bytes, start_worker

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient

pytestmark = pytest.mark.comfy

KEY = "rp-e2e-key-1234567890abcdef"
FINAL = {"execution_success", "execution_error", "execution_interrupted"}


def prompt(seconds: float = 1.0, steps: int = 4) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "offload-in.png"}},
        "2": {
            "class_type": "ParallelRunsSlowPassthrough",
            "inputs": {"image": ["1", 0], "seconds": seconds, "steps": steps},
        },
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {
            "class_type": "SaveImage",
            "inputs": {"images": ["3", 0], "filename_prefix": f"e2e-{uuid.uuid4().hex[:6]}"},
        },
        "5": {
            "class_type": "SaveImage",
            "inputs": {"images": ["2", 0], "filename_prefix": f"e2e-raw-{uuid.uuid4().hex[:6]}"},
        },
    }


@dataclass
class FrameRecorder(ComfyClient):
    """A's websocket client, keeping the raw binary frames to check their exact layout."""

    frames: list[bytes] = field(default_factory=list)

    def decode_binary(self, frame: bytes):
        self.frames.append(bytes(frame))
        return super().decode_binary(frame)


def type4_frames(frames: list[bytes]) -> list[tuple[dict, bytes]]:
    """(metadata, image) of each `[u32 4][u32 len][metadata json][image]` frame."""
    found = []
    for frame in frames:
        event, length = struct.unpack_from(">II", frame)
        if event == 4:
            found.append((json.loads(frame[8 : 8 + length]), frame[8 + length :]))
    return found


async def view(client: ComfyClient, url: str, image: dict) -> bytes:
    async with client.session.get(f"{url}/view", params=image) as response:
        assert response.status == 200
        return await response.read()


def pixel_of(png: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.size == (16, 8)
        return picture.convert("RGB").getpixel((3, 3))


def close_to(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 1) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


async def offload_and_watch(url: str, body: dict, client: ComfyClient, timeout: float = 120):
    """POST the prompt, then record A's websocket events for it until a final one."""
    events = []
    async with client.session.post(f"{url}/parallel/offload/prompt", json=body) as response:
        answer = await response.json()
        assert response.status == 200, answer
    prompt_id = answer["prompt_id"]

    async def collect() -> None:
        async for event in client.events():
            data = event.data if isinstance(event.data, dict) else {}
            if data.get("prompt_id") == prompt_id:
                events.append(event)
                if event.type in FINAL:
                    return

    await asyncio.wait_for(collect(), timeout)
    return prompt_id, events


@early_fixture()
@contextlib.contextmanager
def comfy_a_with_worker(early: Early):
    """One A, fake and worker for the module (each start costs seconds), started ahead of
    the module in the background; tests look only at the jobs and outputs they made
    (`new_jobs`, `listed_jobs`)."""
    tmp_path = early.path
    # the worker's long polls answer within 0.5 s (not 2 s): on SIGTERM it waits for them
    with fake_in_thread(api_key=KEY, take_poll=0.5, stop_poll=0.5) as fake:
        comfy_server = early.session_server("comfy_server")
        worker = start_worker(fake, comfy_server.url, tmp_path / "worker.log")
        try:
            base = tmp_path / "comfy-a"
            comfy_a = start_comfy_a(base, fake)
            try:
                yield fake, comfy_a, base, worker
            finally:
                comfy_a.stop()
        finally:
            worker.stop()


def new_jobs(fake, before: set[str]) -> list:
    """The fake's jobs submitted since it had the ids `before`."""
    return [job for job_id, job in fake.jobs.items() if job_id not in before]


async def listed_jobs(url: str) -> list[dict]:
    """A's offloaded jobs (GET /parallel/offload/jobs)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url}/parallel/offload/jobs") as response,
    ):
        return (await response.json())["jobs"]


async def test_offloaded_prompt_runs_on_b_and_shows_up_in_a(comfy_a_with_worker):
    fake, comfy_a, base, worker = comfy_a_with_worker
    jobs_before = set(fake.jobs)
    listed_before = {job["prompt_id"] for job in await listed_jobs(comfy_a.url)}
    (base / "input" / "offload-in.png").write_bytes(png_bytes(16, 8, (200, 30, 30)))

    async with FrameRecorder(comfy_a.url) as client:
        body = {"prompt": prompt(seconds=2.5), "client_id": client.client_id}
        prompt_id, events = await offload_and_watch(comfy_a.url, body, client)
        types = [e.type for e in events]
        assert types[-1] == "execution_success", (events[-3:], worker.log_text()[-3000:])

        # ComfyUI's own events, in a sensible order, under A's prompt id
        assert types.index("execution_start") < types.index("executed")
        assert "executing" in types and "progress" in types
        progress = [e.data for e in events if e.type == "progress"]
        assert {p["node"] for p in progress} == {"2"} and progress[-1]["max"] == 4
        jobs = [e.data for e in events if e.type == "parallel.job"]
        assert jobs[0]["status"] == "queued" and jobs[-1]["status"] == "success"
        assert {j["executor"] for j in jobs} == {"runpod:ep-test"}

        # the slow node's preview, relayed as a type-4 frame naming A's prompt and the node
        assert "preview" in types, (types, worker.log_text()[-3000:])
        assert types.index("execution_start") < types.index("preview") < types.index("executed")
        (metadata, jpeg), *_ = type4_frames(client.frames)
        assert metadata == {
            "node_id": "2",
            "display_node_id": "2",
            "parent_node_id": None,
            "real_node_id": "2",
            "prompt_id": prompt_id,
            "image_type": "image/jpeg",
        }
        with Image.open(io.BytesIO(jpeg)) as picture:
            assert picture.format == "JPEG" and picture.size == (16, 8)
            assert close_to(picture.convert("RGB").getpixel((8, 4)), (200, 30, 30), 12)

        # each SaveImage's file is shown on that node: 4 got the inverted image, 5 the source
        executed = {e.data["node"]: e.data["output"] for e in events if e.type == "executed"}
        assert sorted(executed) == ["4", "5"]
        served = {}
        for node, output in executed.items():
            (image,) = output["images"]
            assert image["type"] == "output"
            assert image["subfolder"] == f"parallel-runs/{prompt_id}"
            served[node] = await view(client, comfy_a.url, image)
            saved = base / "output" / image["subfolder"] / image["filename"]
            assert served[node] == saved.read_bytes()

    inverted = (255 - 200, 255 - 30, 255 - 30)  # B ran ImageInvert (float maths: +-1)
    assert close_to(pixel_of(served["4"]), inverted), pixel_of(served["4"])
    assert close_to(pixel_of(served["5"]), (200, 30, 30)), pixel_of(served["5"])

    (job,) = new_jobs(fake, jobs_before)
    assert job.status == "COMPLETED" and job.progress, "the worker reported progress"
    assert [i["name"] for i in job.input["images"]] == ["offload-in.png"]
    (listed,) = [j for j in await listed_jobs(comfy_a.url) if j["prompt_id"] not in listed_before]
    assert listed["prompt_id"] == prompt_id and listed["status"] == "success"
    assert listed["job_id"] == job.id


async def test_cancel_through_a_interrupts_the_prompt_on_b(comfy_a_with_worker, comfy_server):
    fake, comfy_a, base, worker = comfy_a_with_worker
    jobs_before = set(fake.jobs)
    (base / "input" / "offload-in.png").write_bytes(png_bytes())
    async with ComfyClient(comfy_a.url) as client:
        # its first progress (when the test cancels) after 0.5 s, not after a quarter of 30 s
        body = {"prompt": prompt(seconds=30, steps=60), "client_id": client.client_id}
        async with client.session.post(
            f"{comfy_a.url}/parallel/offload/prompt", json=body
        ) as response:
            prompt_id = (await response.json())["prompt_id"]

        async def until(kind: str) -> None:
            async for event in client.events():
                data = event.data if isinstance(event.data, dict) else {}
                if data.get("prompt_id") == prompt_id and event.type == kind:
                    return

        await asyncio.wait_for(until("progress"), 90)
        async with client.session.post(
            f"{comfy_a.url}/parallel/offload/cancel", json={"prompt_id": prompt_id}
        ) as response:
            assert await response.json() == {"prompt_id": prompt_id, "status": "interrupted"}
        await asyncio.wait_for(until("execution_interrupted"), 30)

    (job,) = new_jobs(fake, jobs_before)
    assert job.status == "CANCELLED"
    # B stops the prompt too (the worker interrupts it): its queue drains well before 30 s
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            async with http.get(f"{comfy_server.url}/queue") as response:
                queue = await response.json()
            if not queue["queue_running"]:
                break
            await asyncio.sleep(0.2)
    assert queue["queue_running"] == [], worker.log_text()[-2000:]
    assert not (base / "output" / "parallel-runs" / prompt_id).exists()
