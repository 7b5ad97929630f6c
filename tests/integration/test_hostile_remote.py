"""A real ComfyUI ("A", with this package, remote offload opted in) against a hostile stand-in
for RunPod and hostile requests: answers too big, texts too long, the key echoed back, answers
that make no sense or never come, a kill in the middle of saving a result, deep JSON, and
result files with device names, lying contents or too many of them. Each case ends the prompt
with a clear error (or shows it failing while it may recover), keeps ComfyUI responsive, and
stores and sends only bounded text."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from early_servers import Early, early_fixture
from offload_harness import events_until, real_prompt, start_comfy_a
from registry_db import raw_bytes, stored_records, stored_text
from runpod_fake import FakeRunpod, Outcome, fake_in_thread, png_bytes

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient, Event
from parallel_runs_node.parallel_runs.client.process import ComfyProcess

pytestmark = pytest.mark.comfy

KEY = "test-hostile-key-00000000000000000000"
TIMEOUT = 2  # PARALLEL_RUNS_REMOTE_TIMEOUT for A: a stalled answer counts as failed after it
# A's RunPod relay waits a tenth of production's between status polls and after failed ones
# (test-only tuning): a failing RunPod shows as failing, and recovers, within a second
TIME_SCALE = "0.1"
ENDINGS = {"execution_success", "execution_error", "execution_interrupted"}


class ComfyA:
    """ComfyUI A, the fake it offloads to, and HTTP helpers."""

    def __init__(self, base: Path, fake: FakeRunpod) -> None:
        self.base, self.fake = base, fake
        self.server: ComfyProcess = self.start()

    def start(self) -> ComfyProcess:
        return start_comfy_a(
            self.base,
            self.fake,
            PARALLEL_RUNS_ALLOW_REMOTE_OFFLOAD="1",
            PARALLEL_RUNS_REMOTE_TIMEOUT=str(TIMEOUT),
            PARALLEL_RUNS_TEST_TIME_SCALE=TIME_SCALE,
        )

    @property
    def url(self) -> str:
        return self.server.url

    async def post(self, path: str, body: Any, **headers: str) -> tuple[int, Any]:
        data = body if isinstance(body, str) else json.dumps(body)
        headers = {"Content-Type": "application/json", **headers}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}{path}", data=data, headers=headers) as response,
        ):
            text = await response.text()  # ComfyUI's own refusals are plain text
            return response.status, json.loads(text) if text.startswith("{") else text

    async def get(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}{path}") as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    async def offload(self, client_id: str, **extra: Any) -> str:
        body = {"prompt": real_prompt(), "client_id": client_id, **extra}
        status, answer = await self.post("/parallel/offload/prompt", body)
        assert status == 200, answer
        return answer["prompt_id"]

    async def job(self, prompt_id: str) -> dict[str, Any]:
        jobs = (await self.get("/parallel/offload/jobs"))["jobs"]
        (job,) = [j for j in jobs if j["prompt_id"] == prompt_id]
        return job

    async def summary(self, prompt_id: str) -> dict[str, Any]:
        (job,) = [
            j for j in (await self.get("/parallel/jobs"))["jobs"] if j["prompt_id"] == prompt_id
        ]
        return job

    def registry_text(self) -> str:
        """What the job database holds: its rows' records, then its files' raw bytes."""
        database = self.base / "user" / "__parallel_runs" / "offload_jobs.sqlite3"
        raw = raw_bytes(database).decode(errors="replace")  # before a connection of ours
        assert stored_records(database), "the registry holds the jobs"
        return stored_text(database) + "\n" + raw

    def log(self) -> str:
        return (self.base / "comfyui.log").read_text(errors="replace")


@early_fixture()
@contextlib.contextmanager
def comfy_a(early: Early) -> Iterator[ComfyA]:
    """Started ahead of the module, in the background."""
    with fake_in_thread(api_key=KEY) as fake:
        a = ComfyA(early.path, fake)
        try:
            yield a
        finally:
            a.server.stop()


async def run_job(a: ComfyA, outcome: Outcome, **extra: Any) -> tuple[str, list[Event]]:
    """Offload one prompt that the fake ends with `outcome`; its events until it ends."""
    client_id = f"tab-{uuid.uuid4().hex[:8]}"
    a.fake.outcomes.append(outcome)
    async with ComfyClient(a.url, client_id=client_id) as client:
        prompt_id = await a.offload(client_id, **extra)
        return prompt_id, await events_until(client, prompt_id, ENDINGS)


def error_of(events: list[Event]) -> dict[str, Any]:
    assert events[-1].type == "execution_error", [e.type for e in events]
    return events[-1].data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------- 3. answer size


async def test_an_answer_over_the_cap_ends_the_prompt_and_comfyui_stays_responsive(comfy_a):
    """A status answer bigger than the cap is read no further; /parallel/health keeps
    answering quickly while it streams in."""
    chunk = b"A" * (1024 * 1024)

    async def huge(request: web.Request, job: Any) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(b'{"id": "%s", "status": "COMPLETED", "output": "' % job.id.encode())
        for _ in range(48):  # 48 MB, no Content-Length: the cap must hold while streaming
            await response.write(chunk)
        await response.write(b'"}')
        return response

    client_id = f"tab-{uuid.uuid4().hex[:8]}"
    comfy_a.fake.outcomes.append(Outcome(worker_time=30, steps=30))
    latencies: list[float] = []
    async with ComfyClient(comfy_a.url, client_id=client_id) as client:
        prompt_id = await comfy_a.offload(client_id)
        job_id = (await comfy_a.job(prompt_id))["job_id"]
        comfy_a.fake.status_answers[job_id] = huge
        ending = asyncio.create_task(events_until(client, prompt_id, ENDINGS))
        while not ending.done():
            started = time.monotonic()
            await comfy_a.get("/parallel/health")
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
        events = await ending
    error = error_of(events)
    assert error["exception_type"] == "answer_too_large"
    assert (
        "larger than 32 MB" in error["exception_message"] and job_id in error["exception_message"]
    )
    assert max(latencies) < 1.0, latencies
    assert not (comfy_a.base / "output" / "parallel-runs" / prompt_id).exists()


# --------------------------------------------------------------------------- 4. long texts


async def test_long_error_texts_and_ids_are_bounded_everywhere(comfy_a):
    long_error = "the worker says: " + "E" * (5 * 1024 * 1024)
    workflow_id = "w" * (1024 * 1024)
    extra = {"extra_data": {"extra_pnginfo": {"workflow": {"id": workflow_id}}}}
    outcome = Outcome(kind="complete", worker_time=0.2, result={"output": {"error": long_error}})
    prompt_id, events = await run_job(comfy_a, outcome, **extra)
    error = error_of(events)
    assert error["exception_message"].startswith("the worker reported: the worker says: EEE")
    assert len(error["exception_message"]) <= 2000
    assert "more characters" in error["exception_message"]
    summary = await comfy_a.summary(prompt_id)
    assert len(summary["error"]["message"]) <= 2000 and summary.get("workflow_id") is None
    assert len(json.dumps(summary)) < 5000
    assert "E" * 3000 not in comfy_a.registry_text() and "w" * 300 not in comfy_a.registry_text()
    assert "E" * 3000 not in comfy_a.log()


# --------------------------------------------------------------------------- 5. echoed key


async def test_the_key_echoed_by_the_remote_side_is_scrubbed(comfy_a):
    echoed = f"proxy rejected upstream: Authorization: Bearer {KEY}"
    _, events = await run_job(comfy_a, Outcome(kind="fail", worker_time=0.2, error=echoed))
    error = error_of(events)
    assert "proxy rejected upstream" in error["exception_message"]
    texts = [json.dumps([e.data for e in events]), json.dumps(await comfy_a.get("/parallel/jobs"))]
    texts += [comfy_a.registry_text(), comfy_a.log()]
    texts.append(json.dumps(await comfy_a.get("/parallel/offload/jobs")))
    assert all(KEY not in text for text in texts)
    assert "<hidden>" in error["exception_message"]


# --------------------------------------------------------------------------- 6. no sense


def answering(status: int, body: bytes, content_type: str = "application/json") -> Any:
    async def answer(_request: web.Request, _job: Any) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type)

    return answer


async def stalled(_request: web.Request, _job: Any) -> web.Response:
    await asyncio.sleep(TIMEOUT * 5)
    return web.json_response({})


NONSENSE = {
    "invalid status": (
        lambda job: answering(200, json.dumps({"id": job.id, "status": "EXPLODED"}).encode()),
        "status: Input should be 'IN_QUEUE'",
    ),
    "missing id": (lambda job: answering(200, b'{"status": "IN_PROGRESS"}'), "id: Field required"),
    "html": (
        lambda job: answering(200, b"<html><body>502 Bad Gateway</body></html>", "text/html"),
        "502 Bad Gateway",
    ),
    "server error": (lambda job: answering(500, b'{"error": "upstream exploded"}'), "HTTP 500"),
    "stalled": (lambda job: stalled, f"within {TIMEOUT} s"),
}


@pytest.mark.parametrize("case", list(NONSENSE))
async def test_answers_that_make_no_sense_show_the_prompt_failing_until_it_recovers(comfy_a, case):
    make, words = NONSENSE[case]
    client_id = f"tab-{uuid.uuid4().hex[:8]}"
    finish = threading.Event()  # the job runs on RunPod until the prompt has recovered
    comfy_a.fake.outcomes.append(Outcome(worker_time=0.4, steps=4, hold=finish))
    try:
        async with ComfyClient(comfy_a.url, client_id=client_id) as client:
            prompt_id = await comfy_a.offload(client_id)
            job_id = (await comfy_a.job(prompt_id))["job_id"]
            comfy_a.fake.status_answers[job_id] = make(comfy_a.fake.job(job_id))
            jobs = await events_until(client, prompt_id, {"parallel.job"}, timeout=30)
            while not jobs[-1].data.get("warning"):
                jobs = await events_until(client, prompt_id, {"parallel.job"}, timeout=30)
            warning = jobs[-1].data["warning"]
            assert jobs[-1].data["status"] in ("queued", "running") and words in warning, warning
            assert "still trying" in warning
            assert (await comfy_a.summary(prompt_id))["warning"] == warning
            del comfy_a.fake.status_answers[job_id]  # RunPod answers properly again
            events = await events_until(client, prompt_id, {"parallel.job"}, timeout=30)
            # the warning is gone while the job still runs; then RunPod finishes it
            while events[-1].data.get("warning") or events[-1].data["status"] != "running":
                events += await events_until(client, prompt_id, {"parallel.job"}, timeout=30)
            finish.set()
            events += await events_until(client, prompt_id, ENDINGS, timeout=60)
    finally:
        finish.set()
    cleared = [e for e in events if e.type == "parallel.job" and e.data.get("warning") is None]
    assert cleared, [e.data for e in events if e.type == "parallel.job"]
    assert events[-1].type == "execution_success"
    assert (await comfy_a.summary(prompt_id)).get("warning") is None


# --------------------------------------------------------------------------- 8. deep JSON


async def test_deeply_nested_request_bodies_are_a_400(comfy_a):
    deep = '{"prompt": ' + "[" * 100_000 + "]" * 100_000 + ', "client_id": "c"}'
    status, answer = await comfy_a.post("/parallel/offload/prompt", deep)
    assert status == 400 and answer["error"]["type"] == "invalid_json"
    assert "nested deeper than" in answer["error"]["message"]
    status, answer = await comfy_a.post("/parallel/offload/config", deep)
    assert status == 400
    assert comfy_a.server.poll().value == "ready"


# --------------------------------------------------------------------------- 9. files


async def test_device_names_lying_contents_and_too_many_files(comfy_a):
    png = b64(png_bytes())
    images = [
        {"filename": "CON.png", "type": "base64", "data": png},
        {"filename": "nul.png", "type": "base64", "data": png},
        {"filename": "page.png", "type": "base64", "data": b64(b"<html>not a png</html>")},
    ] + [{"filename": f"many_{i}.png", "type": "base64", "data": png} for i in range(1100)]
    outcome = Outcome(worker_time=0.2, result={"output": {"images": images}})
    prompt_id, events = await run_job(comfy_a, outcome)
    error = error_of(events)
    message = error["exception_message"]
    assert error["exception_type"] == "result_refused"
    assert "contents are not a .png file" in message and "103 more result file(s)" in message
    folder = comfy_a.base / "output" / "parallel-runs" / prompt_id
    names = {p.name for p in folder.iterdir()}
    assert len(names) == 999 and {"_CON.png", "_nul.png"} <= names and "page.png" not in names


# --------------------------------------------------------------------------- 2. remote opt-in


async def test_the_remote_opt_in_still_refuses_other_sites_and_rebinding(comfy_a):
    before = await comfy_a.get("/parallel/offload/config")
    port = comfy_a.url.rsplit(":", 1)[1]
    change = {"endpoint_id": "attacker-endpoint"}
    cases = [
        {"Origin": "http://evil.example"},  # another site, as with --enable-cors-header
        {"Host": f"rebind.example:{port}", "Origin": f"http://rebind.example:{port}"},
        {"Host": f"rebind.example:{port}"},  # DNS rebinding without an Origin
    ]
    for headers in cases:
        status, answer = await comfy_a.post("/parallel/offload/config", change, **headers)
        assert status == 403, (headers, answer)
        status, answer = await comfy_a.post(
            "/parallel/offload/prompt", {"prompt": real_prompt(), "client_id": "c"}, **headers
        )
        assert status == 403, (headers, answer)
    assert await comfy_a.get("/parallel/offload/config") == before
    # what the opt-in is for: this machine's page by its address, and other machines
    same_page = {"Origin": comfy_a.url}
    status, _ = await comfy_a.post(
        "/parallel/offload/config", {"endpoint_id": "ep-test"}, **same_page
    )
    assert status == 200


# --------------------------------------------------------------------------- 7. crash


async def test_a_kill_while_saving_a_result_leaves_each_file_once(comfy_a):
    """ComfyUI killed while it writes a result's files; after the restart the result is
    saved again over what was written, never beside it."""
    count = 990
    images = [
        {"filename": "frame.png", "type": "base64", "data": b64(png_bytes(64, 64, (i % 250, 9, 9)))}
        for i in range(count)
    ]
    comfy_a.fake.outcomes.append(Outcome(worker_time=1.0, result={"output": {"images": images}}))
    prompt_id = await comfy_a.offload(f"tab-{uuid.uuid4().hex[:8]}")
    folder = comfy_a.base / "output" / "parallel-runs" / prompt_id
    written = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        written = len(os.listdir(folder)) if folder.is_dir() else 0
        if written >= 9:
            os.killpg(comfy_a.server.pid, signal.SIGKILL)
            break
        await asyncio.sleep(0.001)
    comfy_a.server.stop()
    assert 9 <= written < count, f"the kill came after {written} of {count} files"
    comfy_a.server = comfy_a.start()
    for _ in range(300):
        if (await comfy_a.job(prompt_id))["status"] != "running":
            break
        await asyncio.sleep(0.1)
    job = await comfy_a.job(prompt_id)
    assert job["status"] == "success", job
    names = sorted(os.listdir(folder))
    assert len(names) == count and len(set(names)) == count
    assert names == sorted(["frame.png"] + [f"frame_{i}.png" for i in range(1, count)])
