"""A real ComfyUI A with this package, restarted while its offloaded prompt runs remotely:
it follows the job again and saves its outputs once.

The test plays RunPod's worker through the fake's worker routes: it takes the job before A
stops and posts the result only once the restarted A is following the job again, so the job
is running remotely for the whole restart however long that takes (and no longer)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from early_servers import Early, early_fixture
from offload_harness import events_until, real_prompt, start_comfy_a
from runpod_fake import FakeRunpod, Outcome, fake_in_thread, simulated_result

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient
from parallel_runs_node.parallel_runs.client.process import ComfyProcess

KEY = "rp-fault-key-000000000000"
ENDPOINT = "ep-test"  # the one start_comfy_a's environment names


async def take_job(http: aiohttp.ClientSession, fake) -> dict:
    """What the worker does first: take the queued job (the fake marks it IN_PROGRESS)."""
    url = f"{fake.base_url}/{ENDPOINT}/job-take/worker-restart?gpu=fake"
    async with http.get(url, headers={"Authorization": fake.worker_key}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def post_done(http: aiohttp.ClientSession, fake, job_id: str, body: dict) -> None:
    url = f"{fake.base_url}/{ENDPOINT}/job-done/pod-restart/{job_id}?gpu=fake"
    headers = {"Authorization": fake.worker_key}
    async with http.post(url, data=json.dumps(body), headers=headers) as r:
        assert r.status == 200 and "ignored" not in await r.json(), await r.text()


async def status_polled(fake, job_id: str, since: int, timeout: float = 60) -> None:
    """Until A asks the fake for the job's status (a request after the first `since`)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(f"/status/{job_id}" in path for _, path, _ in fake.requests[since:]):
        assert loop.time() < deadline, "the restarted ComfyUI never polled the job"
        await asyncio.sleep(0.05)


@dataclass
class FirstA:
    fake: FakeRunpod  # no simulated worker: the test is the worker
    base: Path
    comfy: ComfyProcess


@early_fixture(scope="function")
@contextlib.contextmanager
def first_a(early: Early) -> Iterator[FirstA]:
    """The fake and A's first start, ahead of the test, in the background."""
    with fake_in_thread(api_key=KEY) as fake:
        base = early.path / "a"
        comfy = start_comfy_a(base, fake)
        try:
            yield FirstA(fake, base, comfy)
        finally:
            comfy.stop()


@pytest.mark.comfy
async def test_comfyui_a_restarted_mid_job_resumes_and_collects(first_a):
    fake, base, comfy = first_a.fake, first_a.base, first_a.comfy
    try:
        async with aiohttp.ClientSession() as http:
            body = {"prompt": real_prompt(), "client_id": "tab-restart"}
            async with http.post(f"{comfy.url}/parallel/offload/prompt", json=body) as r:
                assert r.status == 200, await r.text()
                prompt_id = (await r.json())["prompt_id"]
            job_id = (await take_job(http, fake))["id"]
            comfy.stop()
            stopped = len(fake.requests)  # what the first A asked, before it stopped
            comfy = start_comfy_a(base, fake)  # same base directory: same registry
            async with ComfyClient(comfy.url, client_id="tab-restart") as client:
                await status_polled(fake, job_id, since=stopped)  # following it again
                assert fake.job(job_id).status == "IN_PROGRESS"
                await post_done(http, fake, job_id, simulated_result(Outcome()))
                events = await events_until(
                    client, prompt_id, {"execution_success", "execution_error"}, timeout=90
                )
        assert events[-1].type == "execution_success", events[-1]
        executed = [e.data for e in events if e.type == "executed"]
        image = executed[-1]["output"]["images"][0]
        assert (base / "output" / image["subfolder"] / image["filename"]).is_file()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{comfy.url}/parallel/offload/jobs") as r:
                (job,) = (await r.json())["jobs"]
            async with http.get(f"{comfy.url}/view", params=image) as r:
                assert r.status == 200 and (await r.read()).startswith(b"\x89PNG")
        assert job["status"] == "success" and job["prompt_id"] == prompt_id
    finally:
        comfy.stop()
