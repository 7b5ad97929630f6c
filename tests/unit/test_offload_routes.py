"""The offload routes on a bare aiohttp app against the fake RunPod control plane (its
simulated worker): submission, validation before any network call, relayed events, saved
outputs, cancel, config. Real HTTP on loopback both ways; only RunPod is a fake."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest
from offload_harness import Harness, RecordingServer, build_app, harness_env, simple_prompt
from runpod_fake import Outcome, png_bytes, running_fake

SECRET_KEY = "rp-test-key-0123456789-abcdef"


@pytest.fixture
async def fake():
    async with running_fake(api_key=SECRET_KEY, simulate=Outcome(worker_time=1.5)) as fake:
        yield fake


@pytest.fixture
async def harness(tmp_path, fake, aiohttp_client):
    app, offload, server = build_app(tmp_path, harness_env(fake))
    client = await aiohttp_client(app)
    return Harness(client, offload, server, tmp_path)


def run_requests(fake) -> list[str]:
    return [path for method, path, _ in fake.requests if path.endswith("/run")]


async def test_offloaded_prompt_runs_and_relays_comfy_events(harness: Harness, fake):
    prompt_id = await harness.offload_prompt()
    record = await harness.finish(prompt_id)

    assert record.status == "success", record.error
    types = harness.server.types(prompt_id)
    assert types[0] == "parallel.job"
    assert types.index("execution_start") < types.index("executed")
    assert types.index("executed") < types.index("execution_success")
    assert "progress" in types and "progress_state" in types
    assert all(sid == "tab-1" for _, _, sid in harness.server.events)
    executed = dict(harness.server.of(prompt_id))["executed"]
    assert executed["node"] == "2"  # the prompt's SaveImage
    (image,) = executed["output"]["images"]
    assert image == {
        "filename": "fake_00001_.png",
        "subfolder": f"parallel-runs/{prompt_id}",
        "type": "output",
    }
    saved = harness.output / image["subfolder"] / image["filename"]
    assert saved.read_bytes() == png_bytes()
    last_job = [d for e, d in harness.server.of(prompt_id) if e == "parallel.job"][-1]
    assert last_job == {
        "prompt_id": prompt_id,
        "status": "success",
        "executor": "runpod:ep-test",
        "remote_status": "COMPLETED",
    }
    job = fake.job(record.job_id)
    assert job.input["workflow"]["2"]["class_type"] == "SaveImage"

    response = await harness.client.get("/parallel/offload/jobs")
    (listed,) = (await response.json())["jobs"]
    assert listed["prompt_id"] == prompt_id and listed["job_id"] == record.job_id
    assert listed["outputs"] == {"2": {"images": [image]}}
    (summary,) = harness.offload.jobs_source()
    assert summary.status == "success" and summary.executor == "runpod:ep-test"


async def test_progress_events_use_comfy_shapes(harness: Harness):
    prompt_id = await harness.offload_prompt()
    await harness.finish(prompt_id)
    events = harness.server.of(prompt_id)
    progress = [d for e, d in events if e == "progress"]
    assert progress, "the simulated worker reports progress; the relay must pass it on"
    assert set(progress[-1]) == {"value", "max", "prompt_id", "node"}
    assert 0 < progress[-1]["value"] <= progress[-1]["max"] == 4
    state = [d for e, d in events if e == "progress_state"][-1]
    assert state["nodes"]["1"]["state"] == "running" and state["nodes"]["1"]["node_id"] == "1"
    success = [d for e, d in events if e == "execution_success"]
    assert len(success) == 1 and isinstance(success[0]["timestamp"], int)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": simple_prompt(), "client_id": "c", "surprise": 1}, "surprise"),
        ({"prompt": {}, "client_id": "c"}, "prompt"),
        ({"prompt": simple_prompt()}, "client_id"),
        ({"prompt": simple_prompt(), "client_id": "c", "endpoint_id": "../x"}, "endpoint_id"),
        ({"prompt": {"1": {"inputs": {}}}, "client_id": "c"}, "prompt.1.class_type"),
        (
            {"prompt": {"1": {"class_type": "Nope", "inputs": {}}}, "client_id": "c"},
            "prompt.1.class_type",
        ),
        (
            {
                "prompt": {"2": {"class_type": "SaveImage", "inputs": {"images": ["9", 0]}}},
                "client_id": "c",
            },
            "prompt.2.inputs.images",
        ),
        ({"prompt": {"1": {"class_type": "EmptyImage"}}, "client_id": "c"}, None),  # no output
        (
            {
                "prompt": {
                    **simple_prompt(),
                    "3": {"class_type": "LoadImage", "inputs": {"image": "../../etc/passwd"}},
                },
                "client_id": "c",
            },
            "prompt.3.inputs",
        ),
        (
            {
                "prompt": {
                    **simple_prompt(),
                    "3": {"class_type": "LoadImage", "inputs": {"image": "missing.png"}},
                },
                "client_id": "c",
            },
            "prompt.3.inputs",
        ),
    ],
)
async def test_bad_requests_are_refused_before_any_network_call(harness, fake, body, field):
    status, answer = await harness.post("/parallel/offload/prompt", body)
    assert status == 400, answer
    assert answer["error"]["message"]
    assert answer["error"].get("field") == field
    assert run_requests(fake) == []
    assert harness.relay.registry.all() == []


async def test_input_images_are_attached_and_renamed(harness: Harness, fake):
    (harness.base / "input" / "sub").mkdir()
    (harness.base / "input" / "sub" / "cat.png").write_bytes(png_bytes(rgb=(1, 2, 3)))
    prompt = {
        **simple_prompt(),
        "3": {"class_type": "LoadImage", "inputs": {"image": "sub/cat.png [input]"}},
        "4": {"class_type": "LoadImageMask", "inputs": {"image": "sub/cat.png", "channel": "A"}},
    }
    prompt_id = await harness.offload_prompt(prompt)
    record = await harness.finish(prompt_id)
    sent = fake.job(record.job_id).input
    assert [i["name"] for i in sent["images"]] == ["cat.png"]  # one file, attached once
    assert sent["workflow"]["3"]["inputs"]["image"] == "cat.png"
    assert sent["workflow"]["4"]["inputs"]["image"] == "cat.png"


async def test_oversized_inputs_are_refused_before_sending(harness: Harness, fake):
    (harness.base / "input" / "big.png").write_bytes(os.urandom(8 * 1024 * 1024))
    prompt = {
        **simple_prompt(),
        "3": {"class_type": "LoadImage", "inputs": {"image": "big.png"}},
    }
    status, answer = await harness.post(
        "/parallel/offload/prompt", {"prompt": prompt, "client_id": "c"}
    )
    assert status == 413 and answer["error"]["type"] == "payload_too_large"
    assert "10.5 MB" in answer["error"]["message"]
    assert run_requests(fake) == []


async def test_missing_key_is_a_clear_error_without_network(tmp_path, fake, aiohttp_client):
    env = {k: v for k, v in harness_env(fake).items() if k != "RUNPOD_API_KEY"}
    app, _offload, _server = build_app(tmp_path, env)
    client = await aiohttp_client(app)
    response = await client.post(
        "/parallel/offload/prompt", json={"prompt": simple_prompt(), "client_id": "c"}
    )
    answer = await response.json()
    assert response.status == 400 and answer["error"]["type"] == "missing_api_key"
    assert "RUNPOD_API_KEY" in answer["error"]["message"]
    assert fake.requests == []


async def test_wrong_key_and_unknown_endpoint_leave_nothing_behind(harness, fake):
    fake.api_key = "a-different-key"
    status, answer = await harness.post(
        "/parallel/offload/prompt", {"prompt": simple_prompt(), "client_id": "c"}
    )
    assert status == 401 and answer["error"]["type"] == "auth"
    fake.api_key = SECRET_KEY
    status, answer = await harness.post(
        "/parallel/offload/prompt",
        {"prompt": simple_prompt(), "client_id": "c", "endpoint_id": "no-such-endpoint"},
    )
    assert status == 400 and answer["error"]["type"] == "unknown_endpoint"
    assert answer["error"]["field"] == "endpoint_id"
    assert harness.relay.registry.all() == [] and harness.relay.following() == []


async def test_refused_when_listening_beyond_loopback(tmp_path, fake, aiohttp_client):
    app, _, _ = build_app(tmp_path / "a", harness_env(fake), listen="0.0.0.0")
    client = await aiohttp_client(app)
    response = await client.post(
        "/parallel/offload/prompt", json={"prompt": simple_prompt(), "client_id": "c"}
    )
    answer = await response.json()
    assert response.status == 409
    assert "PARALLEL_RUNS_ALLOW_REMOTE_OFFLOAD=1" in answer["error"]["message"]
    assert fake.requests == []
    config = await (await client.get("/parallel/offload/config")).json()
    assert config["allowed"] is False

    env = harness_env(fake, PARALLEL_RUNS_ALLOW_REMOTE_OFFLOAD="1")
    app, _, _ = build_app(tmp_path / "b", env, listen="0.0.0.0,::")
    client = await aiohttp_client(app)
    response = await client.post(
        "/parallel/offload/prompt", json={"prompt": simple_prompt(), "client_id": "c"}
    )
    assert response.status == 200


async def test_cancel_mid_run_interrupts_the_prompt(tmp_path, aiohttp_client):
    async with running_fake(api_key=SECRET_KEY, simulate=Outcome(worker_time=5, steps=20)) as fake:
        app, offload, server = build_app(tmp_path, harness_env(fake))
        harness = Harness(await aiohttp_client(app), offload, server, tmp_path)
        prompt_id = await harness.offload_prompt()
        while "progress" not in server.types(prompt_id):
            await asyncio.sleep(0.05)
        status, answer = await harness.post("/parallel/offload/cancel", {"prompt_id": prompt_id})
        assert (status, answer) == (200, {"prompt_id": prompt_id, "status": "interrupted"})
        record = offload.deps.registry.get(prompt_id)
        assert fake.job(record.job_id).status == "CANCELLED"
        types = server.types(prompt_id)
        assert types[-2:] == ["parallel.job", "execution_interrupted"]
        assert "execution_success" not in types and offload.deps.relay.following() == []
        assert not (tmp_path / "output" / "parallel-runs").exists()
        status, answer = await harness.post("/parallel/offload/cancel", {"prompt_id": "nope"})
        assert status == 404 and answer["error"]["type"] == "unknown_prompt"


async def test_config_key_is_write_only(tmp_path, fake, aiohttp_client):
    env = {k: v for k, v in harness_env(fake).items() if k != "RUNPOD_API_KEY"}
    app, offload, _ = build_app(tmp_path, env)
    client = await aiohttp_client(app)
    before = await (await client.get("/parallel/offload/config")).json()
    assert before["api_key_set"] is False and before["api_key_last4"] is None

    response = await client.post(
        "/parallel/offload/config", json={"api_key": SECRET_KEY, "endpoint_id": "ep-test"}
    )
    text = await response.text()
    assert response.status == 200 and SECRET_KEY not in text
    after = json.loads(text)
    assert after["api_key_set"] and after["api_key_last4"] == SECRET_KEY[-4:]
    assert after["endpoint_id"] == "ep-test" and after["api_key_source"] == "file"
    key_file = offload.deps.config.key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.parent.name == "__parallel_runs"  # ComfyUI never serves "__" users
    assert SECRET_KEY not in (await (await client.get("/parallel/offload/config")).text())

    # the stored key is used
    response = await client.post(
        "/parallel/offload/prompt", json={"prompt": simple_prompt(), "client_id": "c"}
    )
    assert response.status == 200

    response = await client.post("/parallel/offload/config", json={"api_key": "has space"})
    assert response.status == 400 and (await response.json())["error"]["field"] == "api_key"
    response = await client.post("/parallel/offload/config", json={"api_key": ""})
    assert (await response.json())["api_key_set"] is False and not key_file.exists()


async def test_config_refuses_to_shadow_the_environment_key(harness: Harness):
    response = await harness.client.post("/parallel/offload/config", json={"api_key": "other-key"})
    answer = await response.json()
    assert response.status == 409 and answer["error"]["type"] == "key_from_env"


async def test_request_carrying_the_key_is_refused(harness: Harness, fake):
    prompt = simple_prompt()
    prompt["2"]["inputs"]["filename_prefix"] = SECRET_KEY
    status, answer = await harness.post(
        "/parallel/offload/prompt", {"prompt": prompt, "client_id": "c"}
    )
    assert status == 400 and answer["error"]["type"] == "secret_in_request"
    assert SECRET_KEY not in json.dumps(answer)
    assert run_requests(fake) == []


def test_recording_server_rejects_non_json():
    with pytest.raises(TypeError):
        RecordingServer().send_sync("x", {"bad": object()})
