"""A real ComfyUI A with this package, restarted while its offloaded prompt runs remotely:
it follows the job again and saves its outputs once."""

from __future__ import annotations

import aiohttp
import pytest
from offload_harness import events_until, real_prompt, start_comfy_a
from runpod_fake import Outcome, fake_in_thread

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient

KEY = "rp-fault-key-000000000000"


@pytest.mark.comfy
async def test_comfyui_a_restarted_mid_job_resumes_and_collects(tmp_path):
    with fake_in_thread(api_key=KEY, simulate=Outcome(worker_time=25, steps=50)) as fake:
        base = tmp_path / "a"
        comfy = start_comfy_a(base, fake)
        try:
            async with aiohttp.ClientSession() as http:
                body = {"prompt": real_prompt(), "client_id": "tab-restart"}
                async with http.post(f"{comfy.url}/parallel/offload/prompt", json=body) as r:
                    assert r.status == 200, await r.text()
                    prompt_id = (await r.json())["prompt_id"]
            comfy.stop()
            comfy = start_comfy_a(base, fake)  # same base directory: same registry
            async with ComfyClient(comfy.url, client_id="tab-restart") as client:
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
