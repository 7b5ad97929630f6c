"""End to end: ComfyUI A (with the package) offloads a prompt to the fake RunPod control plane,
which the unmodified `runpod` worker loop serves with our handler driving a second real
ComfyUI B. A's websocket client sees ComfyUI's own events under A's prompt id, and the result
lands in A's output folder where /view serves it."""

from __future__ import annotations

import asyncio
import io
import uuid

import aiohttp
import pytest
from offload_harness import start_comfy_a
from runpod_fake import fake_in_thread, png_bytes, start_worker

from parallel_runs.client import ComfyClient

pytestmark = pytest.mark.comfy

KEY = "rp-e2e-key-1234567890abcdef"
FINAL = {"execution_success", "execution_error", "execution_interrupted"}


def prompt(seconds: float = 1.0) -> dict:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "offload-in.png"}},
        "2": {
            "class_type": "ParallelRunsSlowPassthrough",
            "inputs": {"image": ["1", 0], "seconds": seconds, "steps": 4},
        },
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {
            "class_type": "SaveImage",
            "inputs": {"images": ["3", 0], "filename_prefix": f"e2e-{uuid.uuid4().hex[:6]}"},
        },
    }


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


@pytest.fixture
def comfy_a_with_worker(tmp_path, comfy_server):
    with fake_in_thread(api_key=KEY) as fake:
        worker = start_worker(fake, comfy_server.url, tmp_path / "worker.log")
        base = tmp_path / "comfy-a"
        comfy_a = start_comfy_a(base, fake)
        try:
            yield fake, comfy_a, base, worker
        finally:
            comfy_a.stop()
            worker.stop()


async def test_offloaded_prompt_runs_on_b_and_shows_up_in_a(comfy_a_with_worker):
    fake, comfy_a, base, worker = comfy_a_with_worker
    (base / "input" / "offload-in.png").write_bytes(png_bytes(16, 8, (200, 30, 30)))

    async with ComfyClient(comfy_a.url) as client:
        body = {"prompt": prompt(), "client_id": client.client_id}
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

        (executed,) = [e.data for e in events if e.type == "executed"]
        assert executed["node"] == "4"
        (image,) = executed["output"]["images"]
        assert image["type"] == "output" and image["subfolder"] == f"parallel-runs/{prompt_id}"
        saved = base / "output" / image["subfolder"] / image["filename"]
        async with client.session.get(f"{comfy_a.url}/view", params=image) as response:
            assert response.status == 200
            served = await response.read()
        assert served == saved.read_bytes()

    from PIL import Image

    with Image.open(io.BytesIO(served)) as picture:
        assert picture.size == (16, 8)
        pixel = picture.convert("RGB").getpixel((3, 3))
    inverted = (255 - 200, 255 - 30, 255 - 30)  # B ran ImageInvert (float maths: +-1)
    assert all(abs(a - b) <= 1 for a, b in zip(pixel, inverted, strict=True)), pixel

    (job,) = fake.jobs.values()
    assert job.status == "COMPLETED" and job.progress, "the worker reported progress"
    assert [i["name"] for i in job.input["images"]] == ["offload-in.png"]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{comfy_a.url}/parallel/offload/jobs") as response,
    ):
        (listed,) = (await response.json())["jobs"]
    assert listed["prompt_id"] == prompt_id and listed["status"] == "success"
    assert listed["job_id"] == job.id


async def test_cancel_through_a_interrupts_the_prompt_on_b(comfy_a_with_worker, comfy_server):
    fake, comfy_a, base, worker = comfy_a_with_worker
    (base / "input" / "offload-in.png").write_bytes(png_bytes())
    async with ComfyClient(comfy_a.url) as client:
        body = {"prompt": prompt(seconds=30), "client_id": client.client_id}
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

    (job,) = fake.jobs.values()
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
