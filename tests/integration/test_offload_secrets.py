"""The RunPod API key never leaves the server side: not in any HTTP answer, websocket event,
log line of ComfyUI A, saved file (outputs, registry, workflow/PNG metadata) or URL. It only
travels in the Authorization header of requests to RunPod."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from early_servers import Early, early_fixture
from offload_harness import simple_prompt, start_comfy_a
from registry_db import raw_bytes, stored_records, stored_text
from runpod_fake import FakeRunpod, Outcome, fake_in_thread
from yarl import URL

from parallel_runs_node.parallel_runs.client.comfy_client import ComfyClient
from parallel_runs_node.parallel_runs.client.process import ComfyProcess

pytestmark = pytest.mark.comfy

SECRET = f"rp_SECRET_{uuid.uuid4().hex}"
STORED = f"rp_STORED_{uuid.uuid4().hex}"
FINAL = {"execution_success", "execution_error", "execution_interrupted"}


def workflow_extra() -> dict:
    """What the extension sends: the workflow for PNG metadata, executor choice without key."""
    workflow = {"id": "wf-1", "nodes": [], "extra": {"parallel_runs": {"executor": "runpod"}}}
    return {"extra_pnginfo": {"workflow": workflow}}


async def run_offloaded(http, client, url, body) -> tuple[int, str, list]:
    """POST, and collect the events of the prompt (if accepted) until it ends."""
    async with http.post(f"{url}/parallel/offload/prompt", json=body) as response:
        status, text = response.status, await response.text()
    events: list = []
    if status != 200:
        return status, text, events
    prompt_id = json.loads(text)["prompt_id"]

    async def collect() -> None:
        async for event in client.events():
            events.append(event)
            data = event.data if isinstance(event.data, dict) else {}
            if data.get("prompt_id") == prompt_id and event.type in FINAL:
                return

    await asyncio.wait_for(collect(), 60)
    return status, text, events


def readable_files(root):
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and "custom_nodes" not in path.parts:
            yield path, path.read_bytes()


# Ways a browser could ask ComfyUI for user/__parallel_runs/runpod_api_key: traversal out of the
# user's folder (encoded so that no client normalises it away), listing, and the file viewer.
KEY_FILE_PROBES = (
    "/api/userdata/..%2F__parallel_runs%2Frunpod_api_key",
    "/userdata/..%2F__parallel_runs%2Frunpod_api_key",
    "/api/userdata/%2E%2E%2F__parallel_runs%2Frunpod_api_key",
    "/api/userdata/..%252F__parallel_runs%252Frunpod_api_key",
    "/api/userdata/__parallel_runs%2Frunpod_api_key",
    "/userdata/__parallel_runs%2Frunpod_api_key",
    "/api/userdata?dir=../__parallel_runs",
    "/api/userdata?dir=..%2F__parallel_runs&recurse=true&full_info=true",
    "/api/v2/userdata?path=../__parallel_runs",
    "/api/view?filename=runpod_api_key&subfolder=../user/__parallel_runs&type=output",
    "/api/view?filename=runpod_api_key&subfolder=..%2Fuser%2F__parallel_runs&type=input",
)


async def probe(http, url: str, path: str, headers: dict | None = None) -> tuple[int, str]:
    async with http.get(URL(url + path, encoded=True), headers=headers or {}) as response:
        return response.status, await response.text(errors="replace")


async def assert_key_file_not_served(http, url: str, key: str, **headers: str) -> None:
    """Every probe is refused (4xx) and no answer carries the key."""
    answers = {path: await probe(http, url, path, headers) for path in KEY_FILE_PROBES}
    assert all(key not in text for _, text in answers.values()), "the key file was served"
    assert all(400 <= status < 500 for status, _ in answers.values()), {
        path: status for path, (status, _) in answers.items()
    }


@dataclass
class ComfyA:
    fake: FakeRunpod
    comfy: ComfyProcess
    base: Path


@contextlib.contextmanager
def comfy_a(early: Early, fake_options: dict, *args: str, **env: str) -> Iterator[ComfyA]:
    """The fake, and A pointed at it (with `args` and `env`); each test has its own."""
    with fake_in_thread(**fake_options) as fake:
        base = early.path / "a"
        comfy = start_comfy_a(base, fake, *args, **env)
        try:
            yield ComfyA(fake, comfy, base)
        finally:
            comfy.stop()


# Each test's A starts ahead of it, in the background.
@early_fixture(scope="function")
def a_with_key_in_env(early: Early) -> contextlib.AbstractContextManager[ComfyA]:
    fake = {"api_key": SECRET, "simulate": Outcome(worker_time=0.3)}
    return comfy_a(early, fake, RUNPOD_API_KEY=SECRET)


@early_fixture(scope="function")
def a_without_key(early: Early) -> contextlib.AbstractContextManager[ComfyA]:
    return comfy_a(early, {"api_key": STORED, "simulate": Outcome(worker_time=0.2)},
                   RUNPOD_API_KEY="")  # fmt: skip


@early_fixture(scope="function")
def a_multi_user(early: Early) -> contextlib.AbstractContextManager[ComfyA]:
    return comfy_a(early, {"api_key": STORED}, "--multi-user", RUNPOD_API_KEY="")


async def test_the_key_never_leaves_the_server(a_with_key_in_env):
    answers: list[str] = []
    events: list = []
    fake, comfy, base = a_with_key_in_env.fake, a_with_key_in_env.comfy, a_with_key_in_env.base
    fake.outcomes.extend([Outcome(worker_time=0.2), Outcome(kind="fail", worker_time=0.2)])
    try:
        async with aiohttp.ClientSession() as http, ComfyClient(comfy.url) as client:
            body = {
                "prompt": simple_prompt(),
                "client_id": client.client_id,
                "extra_data": workflow_extra(),
            }
            for _ in range(2):  # one success, one remote failure
                status, text, seen = await run_offloaded(http, client, comfy.url, body)
                assert status == 200
                answers.append(text)
                events += seen
            fake.api_key = "some-other-key"  # RunPod now refuses ours
            status, text, _ = await run_offloaded(http, client, comfy.url, body)
            assert status == 401
            answers.append(text)
            bad = {**body, "endpoint_id": "missing-endpoint"}
            fake.api_key = SECRET
            status, text, _ = await run_offloaded(http, client, comfy.url, bad)
            assert status == 400
            answers.append(text)
            for path in ("/parallel/offload/config", "/parallel/offload/jobs"):
                async with http.get(comfy.url + path) as response:
                    answers.append(await response.text())
            async with http.post(
                f"{comfy.url}/parallel/offload/config", json={"api_key": STORED}
            ) as response:
                assert response.status == 409  # the env key wins; said so, not echoed
                answers.append(await response.text())
    finally:
        comfy.stop()
    requests = list(fake.requests)

    assert {e.type for e in events} >= {"execution_success", "execution_error", "parallel.job"}
    for text in answers:
        assert SECRET not in text
    for event in events:
        assert SECRET not in json.dumps(event.data, default=str)
    log = (base / "comfyui.log").read_text(errors="replace")
    assert "[parallel-runs]" in log and SECRET not in log
    saved = dict(readable_files(base))
    assert any("parallel-runs" in str(p) for p in saved), "outputs were saved"
    registry = base / "user" / "__parallel_runs" / "offload_jobs.sqlite3"
    assert registry in saved, "the registry was written"
    for path, data in saved.items():  # the database and its log among them, byte for byte
        assert SECRET.encode() not in data, path
    assert SECRET.encode() not in raw_bytes(registry)
    records = stored_records(registry)  # and what its rows hold, however they are paged
    assert {job["status"] for job in records.values()} >= {"success", "error"}
    assert SECRET not in stored_text(registry)
    client_requests = [r for r in requests if "/job-" not in r[1] and "/ping/" not in r[1]]
    assert client_requests
    for _method, path, headers in client_requests:
        assert SECRET not in path
        assert headers.get("Authorization") == f"Bearer {SECRET}"
    for job in fake.jobs.values():
        assert SECRET not in json.dumps(job.input)


async def test_a_key_set_from_the_ui_stays_in_its_private_file(a_without_key):
    comfy, base = a_without_key.comfy, a_without_key.base
    try:
        async with aiohttp.ClientSession() as http, ComfyClient(comfy.url) as client:
            async with http.post(
                f"{comfy.url}/parallel/offload/config", json={"api_key": STORED}
            ) as response:
                answer = await response.text()
                assert response.status == 200 and STORED not in answer
            body = {"prompt": simple_prompt(), "client_id": client.client_id}
            status, _, events = await run_offloaded(http, client, comfy.url, body)
            assert status == 200 and events[-1].type == "execution_success"
            await assert_key_file_not_served(http, comfy.url, STORED)
    finally:
        comfy.stop()
    holders = [p for p, data in readable_files(base) if STORED.encode() in data]
    assert [p.relative_to(base).as_posix() for p in holders] == [
        "user/__parallel_runs/runpod_api_key"
    ]
    assert SECRET not in (base / "comfyui.log").read_text(errors="replace")


async def test_multi_user_comfyui_does_not_serve_the_key_file(a_multi_user):
    """With --multi-user the `comfy-user` header picks the user folder: neither the package's
    "__" folder as a user nor traversal from a real user's folder reaches the key."""
    comfy, base = a_multi_user.comfy, a_multi_user.base
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{comfy.url}/parallel/offload/config", json={"api_key": STORED}
            ) as response:
                assert response.status == 200 and STORED not in await response.text()
            async with http.post(f"{comfy.url}/api/users", json={"username": "alice"}) as r:
                assert r.status == 200, await r.text()
                alice = await r.json()
            await assert_key_file_not_served(http, comfy.url, STORED, **{"comfy-user": alice})
            for user in ("__parallel_runs", "__PARALLEL_RUNS", "../__parallel_runs"):
                for path in ("/api/userdata/runpod_api_key", "/api/userdata?dir=."):
                    status, text = await probe(http, comfy.url, path, {"comfy-user": user})
                    assert STORED not in text and status != 200, (user, path, status)
    finally:
        comfy.stop()
    assert (base / "user" / "__parallel_runs" / "runpod_api_key").read_text() == STORED
