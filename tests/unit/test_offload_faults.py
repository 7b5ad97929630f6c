"""Faults on the way to RunPod and back, with the offload routes on a bare app and the fake's
simulated worker (the restart through a real ComfyUI is tests/integration/test_offload_restart.py).
Each ends in a clear state with an actionable error, writes nothing outside the output folder
and leaves no job untracked."""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from offload_harness import (
    FAST_POLLS,
    Harness,
    harness_env,
    offload_app,
    simple_prompt,
    wait_until,
)
from runpod_fake import FakeRunpod, Outcome, running_fake

KEY = "rp-fault-key-000000000000"


def fast_app(base: Path, fake: FakeRunpod, **options: Any) -> AbstractAsyncContextManager[Harness]:
    """`offload_app` polling at a test's pace: these tests are about what the polls answer
    (a job's first poll would otherwise wait for its budget, 0.6 s; retries of a job that looks
    queued up to 2 s each)."""
    return offload_app(base, harness_env(fake), runpod_options={"planner": FAST_POLLS}, **options)


def assert_clean(harness: Harness) -> None:
    """Every job final, no follower left, every file inside output/parallel-runs/<id>/."""
    registry = harness.relay.registry
    assert harness.relay.following() == []
    assert all(not r.active for r in registry.all()), [r.status for r in registry.all()]
    state = harness.base / "user" / "__parallel_runs"
    for path in harness.files():
        if path.is_relative_to(state) or path.name == "comfyui.log":
            continue
        rel = path.relative_to(harness.output)  # raises if outside the output folder
        assert rel.parts[0] == "parallel-runs" and registry.get(rel.parts[1]) is not None


def error_event(harness: Harness, prompt_id: str) -> dict:
    (event,) = [d for e, d in harness.server.of(prompt_id) if e == "execution_error"]
    return event


@pytest.mark.parametrize(
    ("outcome", "kind", "words"),
    [
        (Outcome(kind="fail", error="CUDA out of memory"), "RemoteError", "CUDA out of memory"),
        (
            Outcome(
                kind="fail",
                error=json.dumps({"error_type": "ValueError", "error_message": "bad seed"}),
            ),
            "ValueError",
            "bad seed",
        ),
        (Outcome(kind="no_output"), "no_output", "without any output"),
        (Outcome(kind="oversized", oversize_bytes=3 * 1024 * 1024), "result_refused", "too large"),
    ],
)
async def test_remote_failures_end_in_a_clear_error(tmp_path, outcome, kind, words):
    outcome.worker_time = 0.1
    async with running_fake(api_key=KEY) as fake:
        fake.outcomes.append(outcome)
        limits = {"max_file_bytes": 1024 * 1024}
        async with fast_app(tmp_path, fake, saver_limits=limits) as harness:
            prompt_id = await harness.offload_prompt()
            record = await harness.finish(prompt_id)
            assert record.status == "error"
            assert record.error.type == kind and words in record.error.message
            event = error_event(harness, prompt_id)
            assert words in event["exception_message"] and event["exception_type"] == kind
            assert event["node_id"] in ("1", "2") and event["node_type"]
            ending = harness.server.ending_types(prompt_id)
            assert ending[-2:] == ["parallel.job", "execution_error"]
            assert "execution_success" not in harness.server.types(prompt_id)
            assert_clean(harness)


async def test_hostile_file_names_are_refused_and_nothing_escapes(tmp_path):
    async with running_fake(api_key=KEY) as fake:
        fake.outcomes.append(Outcome(kind="hostile", worker_time=0.1))
        async with fast_app(tmp_path / "a", fake) as harness:
            prompt_id = await harness.offload_prompt()
            record = await harness.finish(prompt_id)
    assert record.status == "error" and record.error.type == "result_refused"
    assert "../../escape.png" in record.error.message  # says which names were refused
    saved = [f.filename for files in record.outputs.values() for f in files]
    assert saved == ["hidden.png", "a" * 116 + ".png"]  # the benign ones, made plain
    assert_clean(harness)
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "a" / "x.png").exists()


async def test_rate_limits_and_server_errors_while_following_are_ridden_out(tmp_path):
    async with (
        running_fake(api_key=KEY, simulate=Outcome(worker_time=0.3)) as fake,
        fast_app(tmp_path, fake) as harness,
    ):
        fake.inject(429, times=6, retry_after="0", route="status")
        fake.inject(503, times=6, route="status")
        prompt_id = await harness.offload_prompt()
        record = await harness.finish(prompt_id, timeout=30)
        assert record.status == "success"
        assert all(i.times == 0 for i in fake.injections)
        assert_clean(harness)


@pytest.mark.parametrize(
    ("status", "answer", "kind"),
    [
        (429, 429, "rate_limited"),
        (503, 502, "runpod_unavailable"),
        (500, 502, "runpod_unavailable"),
    ],
)
async def test_submission_failures_are_reported_and_leave_no_record(tmp_path, status, answer, kind):
    async with (
        running_fake(api_key=KEY, simulate=Outcome(worker_time=0.1)) as fake,
        fast_app(tmp_path, fake) as harness,
    ):
        fake.inject(status, times=10, route="run")
        code, body = await harness.post(
            "/parallel/offload/prompt", {"prompt": simple_prompt(), "client_id": "c"}
        )
        assert code == answer and body["error"]["type"] == kind
        assert "try again" in body["error"]["message"]
        assert harness.relay.registry.all() == [] and fake.jobs == {}
        assert_clean(harness)


async def test_key_revoked_mid_job_is_an_actionable_error(tmp_path):
    async with (
        running_fake(api_key=KEY, simulate=Outcome(worker_time=2, steps=8)) as fake,
        fast_app(tmp_path, fake) as harness,
    ):
        prompt_id = await harness.offload_prompt()
        fake.api_key = "rotated-key"
        record = await harness.finish(prompt_id)
        assert record.status == "error" and record.error.type == "auth"
        assert "RUNPOD_API_KEY" in record.error.message
        assert_clean(harness)


async def test_restart_mid_job_resumes_and_collects_outputs(tmp_path):
    async with running_fake(api_key=KEY, simulate=Outcome(worker_time=1.5, steps=6)) as fake:
        async with fast_app(tmp_path, fake) as first:
            prompt_id = await first.offload_prompt()
            await wait_until(
                lambda: first.relay.registry.get(prompt_id).status == "running",
                "the job to be running remotely",
            )
        # the app shut down with the job still running remotely; it stays on record
        async with fast_app(tmp_path, fake) as second:
            assert second.relay.following() == [prompt_id]
            record = await second.finish(prompt_id)
            assert record.status == "success"
            (files,) = record.outputs.values()
            assert (second.output / files[0].subfolder / files[0].filename).is_file()
            types = second.server.types(prompt_id)
            assert "execution_start" not in types  # the UI saw it start before the restart
            assert second.server.ending_types(prompt_id)[-1] == "execution_success"
            assert "parallel.job" in types
            assert all(sid == "tab-1" for _, _, sid in second.server.events)
            assert_clean(second)


async def test_result_expired_while_comfyui_was_down(tmp_path):
    async with running_fake(api_key=KEY, simulate=Outcome(worker_time=0.3)) as fake:
        async with fast_app(tmp_path, fake) as first:
            prompt_id = await first.offload_prompt()
            await asyncio.sleep(0.05)
        await wait_until(
            lambda: any(j.status == "COMPLETED" for j in fake.jobs.values()),
            "the simulated worker to complete the job",
        )
        fake.result_ttl = 0.0  # RunPod forgot the result (30 min in real life)
        async with fast_app(tmp_path, fake) as second:
            record = await second.finish(prompt_id)
            assert record.status == "error" and record.error.type == "expired"
            assert "30 minutes" in record.error.message
            assert error_event(second, prompt_id)["prompt_id"] == prompt_id
            assert_clean(second)


# --------------------------------------------------------------------------- real ComfyUI A
