"""The offload routes on a bare aiohttp app against the fake RunPod control plane (its
simulated worker): submission, validation before any network call, relayed events, saved
outputs, cancel, config. Real HTTP on loopback both ways; only RunPod is a fake."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from pathlib import Path
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request
from offload_harness import (
    OFTEN_POLLS,
    Harness,
    build_app,
    harness_env,
    simple_prompt,
    wait_until,
    writer_threads,
)
from registry_db import stored_records
from runpod_fake import Outcome, png_bytes, running_fake

from parallel_runs_node.server_routes.executors.records import JobRecord
from parallel_runs_node.server_routes.executors.routes import OffloadGuard, RequestError
from parallel_runs_node.server_routes.executors.runpod import config as offload_config
from parallel_runs_node.server_routes.executors.runpod.config import OffloadConfig

SECRET_KEY = "rp-test-key-0123456789-abcdef"


@pytest.fixture
async def fake():
    async with running_fake(api_key=SECRET_KEY, simulate=Outcome(worker_time=0.5)) as fake:
        yield fake


# the harnesses poll the 0.5 s jobs every 10-50 ms: they see them run, and end, at once
POLLS = {"planner": OFTEN_POLLS}


@pytest.fixture
async def harness(tmp_path, fake, aiohttp_client):
    app, offload, server = build_app(tmp_path, harness_env(fake), runpod_options=POLLS)
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
    assert answer["error"]["field"] == "prompt.3.inputs"
    assert run_requests(fake) == []


async def test_input_sizes_are_checked_before_the_files_are_read(harness: Harness, fake):
    """A running total from stat (base64 grows by 4/3): the file that would pass RunPod's
    10 MB limit is refused by name and never read into memory."""
    mb = 1024 * 1024
    (harness.base / "input" / "first.png").write_bytes(os.urandom(4 * mb))
    with open(harness.base / "input" / "second.png", "wb") as handle:
        handle.truncate(4 * mb)  # sparse: 4 MB alone fits; with the first it does not
    with open(harness.base / "input" / "huge.png", "wb") as handle:
        handle.truncate(3 * 1024 * mb)  # sparse 3 GB: must never be read
    real_read = Path.read_bytes
    read: list[str] = []

    def spy(path: Path) -> bytes:
        read.append(path.name)
        if path.name == "huge.png":
            raise AssertionError("the 3 GB file was read before its size was checked")
        return real_read(path)

    def with_inputs(*names: str) -> dict:
        nodes = {
            str(3 + n): {"class_type": "LoadImage", "inputs": {"image": name}}
            for n, name in enumerate(names)
        }
        return {"prompt": {**simple_prompt(), **nodes}, "client_id": "c"}

    with mock.patch.object(Path, "read_bytes", spy):
        status, answer = await harness.post(
            "/parallel/offload/prompt", with_inputs("first.png", "second.png")
        )
        assert status == 413, answer
        error = answer["error"]
        assert error["type"] == "payload_too_large" and error["field"] == "prompt.4.inputs"
        assert "node 4 (LoadImage)" in error["message"] and "'second.png'" in error["message"]
        assert "11.2 MB once encoded" in error["message"]
        assert read == ["first.png"]

        read.clear()
        status, answer = await harness.post("/parallel/offload/prompt", with_inputs("huge.png"))
        assert status == 413 and "'huge.png' (3221.2 MB)" in answer["error"]["message"]
        assert read == []
    assert run_requests(fake) == [] and harness.relay.registry.all() == []


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
    # nor may anyone point it at their own endpoint meanwhile
    response = await client.post("/parallel/offload/config", json={"endpoint_id": "theirs"})
    answer = await response.json()
    assert response.status == 403 and answer["error"]["type"] == "offload_refused"
    assert not (tmp_path / "a" / "user" / "__parallel_runs" / "offload.json").exists()

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
        await wait_until(lambda: "progress" in server.types(prompt_id), "the first progress event")
        status, answer = await harness.post("/parallel/offload/cancel", {"prompt_id": prompt_id})
        assert (status, answer) == (200, {"prompt_id": prompt_id, "status": "interrupted"})
        record = offload.deps.registry.get(prompt_id)
        assert fake.job(record.job_id).status == "CANCELLED"
        types = server.types(prompt_id)
        assert server.ending_types(prompt_id)[-2:] == ["parallel.job", "execution_interrupted"]
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


# --------------------------------------------------------------------------- who may write

ATTACKER_KEY = "rp-attacker-key-9999999999"


def state_files(offload) -> dict[str, bytes]:
    config = offload.deps.config
    return {p.name: p.read_bytes() for p in (config.key_path, config.config_path) if p.exists()}


@pytest.fixture
async def keyed(tmp_path, fake, aiohttp_client) -> Harness:
    """A ComfyUI whose key and endpoint were set over the config route (no key in env)."""
    env = {k: v for k, v in harness_env(fake).items() if k != "RUNPOD_API_KEY"}
    app, offload, server = build_app(tmp_path, env, runpod_options=POLLS)
    harness = Harness(await aiohttp_client(app), offload, server, tmp_path)
    status, answer = await harness.post(
        "/parallel/offload/config", {"api_key": SECRET_KEY, "endpoint_id": "ep-test"}
    )
    assert status == 200, answer
    return harness


ATTACKS = {
    "config": ("/parallel/offload/config", {"api_key": ATTACKER_KEY, "endpoint_id": "evil"}),
    "prompt": ("/parallel/offload/prompt", {"prompt": simple_prompt(), "client_id": "c"}),
    "cancel": ("/parallel/offload/cancel", {"prompt_id": "any"}),
}


@pytest.mark.parametrize("route", sorted(ATTACKS))
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8188", "192.168.1.20:8188", "localhost.evil.example"]
)
async def test_writes_addressed_to_a_foreign_host_are_refused(keyed: Harness, fake, route, host):
    """DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 sends its own Host (and a
    matching Origin, so ComfyUI's origin check lets it through)."""
    before = state_files(keyed.offload)
    path, body = ATTACKS[route]
    headers = {"Host": host, "Origin": f"http://{host}"}
    status, answer = await keyed.post(path, body, headers=headers)
    assert status == 403, answer
    assert answer["error"]["type"] == "forbidden" and "localhost" in answer["error"]["message"]
    assert state_files(keyed.offload) == before
    assert run_requests(fake) == [] and keyed.relay.registry.all() == []


@pytest.mark.parametrize("route", sorted(ATTACKS))
@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("text/plain", json.dumps),  # what a cross-site fetch can send without a preflight
        ("application/x-www-form-urlencoded", lambda b: "x=" + json.dumps(b)),  # a form
        ("multipart/form-data; boundary=b", lambda b: f"--b\r\n\r\n{json.dumps(b)}\r\n--b--"),
    ],
)
async def test_writes_not_declared_json_are_refused(
    keyed: Harness, fake, route, content_type, encode
):
    before = state_files(keyed.offload)
    path, body = ATTACKS[route]
    status, answer = await keyed.post_raw(path, encode(body), content_type)
    assert status == 415, answer
    assert "application/json" in answer["error"]["message"]
    assert state_files(keyed.offload) == before
    assert run_requests(fake) == [] and keyed.relay.registry.all() == []


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://localhost:3000",  # another local web app
        "http://127.0.0.1",  # port 80, not ComfyUI's
        "null",  # sandboxed frames, file:// pages
        "http://[::1",  # malformed
    ],
)
async def test_writes_from_another_origin_are_refused(keyed: Harness, fake, origin):
    """With --enable-cors-header ComfyUI lets any site's JSON request through its own checks;
    the browser still names the page's origin."""
    before = state_files(keyed.offload)
    host = f"127.0.0.1:{keyed.client.port}"
    for path, body in ATTACKS.values():
        status, answer = await keyed.post(path, body, headers={"Host": host, "Origin": origin})
        assert status == 403 and "ComfyUI's own page" in answer["error"]["message"], answer
    assert state_files(keyed.offload) == before
    assert run_requests(fake) == [] and keyed.relay.registry.all() == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "localhost:8188"])
async def test_loopback_json_writes_still_work(keyed: Harness, fake, host):
    status, answer = await keyed.post_raw(
        "/parallel/offload/config",
        json.dumps({"endpoint_id": "ep-other"}),
        "application/json; charset=utf-8",
        Host=host,
        Origin=f"http://{host}",  # ComfyUI's page itself
    )
    assert status == 200 and answer["endpoint_id"] == "ep-other", answer
    status, answer = await keyed.post(
        "/parallel/offload/prompt",
        {"prompt": simple_prompt(), "client_id": "c", "endpoint_id": "ep-test"},
        headers={"Host": host},
    )
    assert status == 200, answer
    status, answer = await keyed.post(
        "/parallel/offload/cancel", {"prompt_id": answer["prompt_id"]}, headers={"Host": host}
    )
    assert status == 200 and answer["status"] == "interrupted"


async def test_a_json_body_that_is_not_json_is_a_400(keyed: Harness):
    """Declared JSON, so past the guard: the body itself is what is wrong."""
    for path in ("/parallel/offload/config", "/parallel/offload/prompt"):
        status, answer = await keyed.post_raw(path, "{not json", "application/json")
        assert status == 400 and answer["error"]["type"] == "invalid_json", answer


def mocked_post(peer: str, host: str, content_type: str = "application/json"):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 40000) if name == "peername" else default
    )
    headers = {"Host": host, "Content-Type": content_type}
    return make_mocked_request("POST", "/parallel/offload/config", headers, transport=transport)


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.168.1.20", False),
        ("10.0.0.7", False),
        ("::ffff:192.168.1.20", False),
        ("fe80::1", False),
    ],
)
def test_the_guard_admits_loopback_peers_only(tmp_path, peer, allowed):
    guard = OffloadGuard(OffloadConfig(tmp_path, env={}, listen="0.0.0.0"))
    request = mocked_post(peer, "127.0.0.1:8188")
    if allowed:
        guard.check(request)
    else:
        with pytest.raises(RequestError) as caught:
            guard.check(request)
        assert caught.value.status == 403 and "this machine only" in caught.value.message
    opt_in = {"PARALLEL_RUNS_ALLOW_REMOTE_OFFLOAD": "1", "PARALLEL_RUNS_ALLOWED_HOSTS": "comfy.lan"}
    opted_in = OffloadGuard(OffloadConfig(tmp_path, env=opt_in))
    opted_in.check(mocked_post(peer, "comfy.lan:8188", "application/json"))
    opted_in.check(mocked_post(peer, "192.168.1.20:8188", "application/json"))
    with pytest.raises(RequestError) as caught:  # the opt-in never lifts the JSON rule
        opted_in.check(mocked_post(peer, "comfy.lan", "text/plain"))
    assert caught.value.status == 415
    with pytest.raises(RequestError) as caught:  # nor admits a name nobody listed
        opted_in.check(mocked_post(peer, "rebind.example:8188", "application/json"))
    assert caught.value.status == 403 and "PARALLEL_RUNS_ALLOWED_HOSTS" in caught.value.message


async def test_opting_in_admits_other_host_names(tmp_path, fake, aiohttp_client):
    env = harness_env(
        fake, PARALLEL_RUNS_ALLOW_REMOTE_OFFLOAD="1", PARALLEL_RUNS_ALLOWED_HOSTS="comfy.lan"
    )
    env.pop("RUNPOD_API_KEY")
    app, _offload, _ = build_app(tmp_path, env, listen="0.0.0.0")
    client = await aiohttp_client(app)
    response = await client.post(
        "/parallel/offload/config",
        json={"endpoint_id": "ep-lan"},
        headers={"Host": "comfy.lan:8188"},
    )
    assert response.status == 200 and (await response.json())["endpoint_id"] == "ep-lan"


# --------------------------------------------------------------------------- off the loop


async def test_settings_are_written_off_the_event_loop(keyed: Harness, monkeypatch):
    loop_thread = threading.get_ident()
    writers = writer_threads(monkeypatch, offload_config)
    status, answer = await keyed.post(
        "/parallel/offload/config", {"api_key": SECRET_KEY + "2", "endpoint_id": "ep-2"}
    )
    assert status == 200 and answer["endpoint_id"] == "ep-2"
    assert answer["api_key_last4"] == (SECRET_KEY + "2")[-4:]
    assert len(writers) == 2 and loop_thread not in writers


async def test_requests_do_not_read_the_settings_files(keyed: Harness, monkeypatch):
    """The key and endpoint are cached, refreshed by the config route's own writes."""
    config = keyed.offload.deps.config
    real = Path.read_text
    reads: list[str] = []

    def spy(path: Path, *args, **kwargs):
        if path in (config.key_path, config.config_path):
            reads.append(path.name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", spy)
    for _ in range(3):
        view = await (await keyed.client.get("/parallel/offload/config")).json()
        assert view["api_key_set"] and view["endpoint_id"] == "ep-test"
    prompt_id = await keyed.offload_prompt()
    assert (await keyed.finish(prompt_id)).status == "success"
    status, view = await keyed.post("/parallel/offload/config", {"api_key": ""})
    assert status == 200 and view["api_key_set"] is False
    status, answer = await keyed.post(
        "/parallel/offload/prompt", {"prompt": simple_prompt(), "client_id": "c"}
    )
    assert status == 400 and answer["error"]["type"] == "missing_api_key"
    assert reads == []


# --------------------------------------------------------------------------- exit


async def test_the_registry_is_flushed_at_exit(tmp_path, fake):
    """ComfyUI 0.3.75 skips the app cleanup on Ctrl-C; the atexit hook saves what is pending."""
    hooks: list = []
    _, offload, _ = build_app(tmp_path, harness_env(fake), at_exit=hooks.append)
    registry = offload.deps.registry
    assert hooks == [registry.flush]

    async def change_then_die() -> None:  # a loop that ends with a deferred write pending
        registry.add(JobRecord(prompt_id="p", endpoint_id="ep-test", job_id="j"))
        await registry.saved()
        registry.update("p", status="running", remote_status="IN_PROGRESS")

    await asyncio.to_thread(asyncio.run, change_then_die())
    assert stored_records(registry.path)["p"]["status"] == "queued"  # the deferred write never ran
    for hook in hooks * 2:  # as atexit would call it, and harmless again
        hook()
    stored = stored_records(registry.path)["p"]
    assert stored["status"] == "running" and stored["remote_status"] == "IN_PROGRESS"


async def test_the_json_registry_of_an_earlier_version_is_imported_at_start(
    tmp_path, fake, aiohttp_client
):
    """An upgrade keeps the jobs: offload_jobs.json in the state folder goes into the database
    when ComfyUI starts, and is renamed aside so that it is imported once."""
    state = tmp_path / "user" / "__parallel_runs"
    state.mkdir(parents=True)
    job = {"prompt_id": "p-old", "endpoint_id": "ep-test", "job_id": "j-old"}
    job |= {"status": "error", "created_at": 1.0, "finished_at": 2.0}
    (state / "offload_jobs.json").write_text(json.dumps({"version": 1, "jobs": [job]}))
    app, offload, _ = build_app(tmp_path, harness_env(fake))
    client = await aiohttp_client(app)  # start-up resumes, so loads the registry
    assert offload.deps.registry.get("p-old").executor == "runpod:ep-test"
    assert offload.deps.registry.path == state / "offload_jobs.sqlite3"
    assert stored_records(state / "offload_jobs.sqlite3")["p-old"]["job_id"] == "j-old"
    assert sorted(p.name for p in state.glob("offload_jobs.json*")) == [
        "offload_jobs.json.migrated"
    ]
    jobs = await (await client.get("/parallel/offload/jobs")).json()
    assert [j["prompt_id"] for j in jobs["jobs"]] == ["p-old"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, 30.0), ("2", 2.0), ("0", 1.0), ("99999", 600.0), ("nan", 30.0), ("soon", 30.0)],
)
def test_the_remote_timeout_is_read_from_the_environment_and_bounded(tmp_path, value, seconds):
    env = {} if value is None else {"PARALLEL_RUNS_REMOTE_TIMEOUT": value}
    assert OffloadConfig(tmp_path, env=env).remote_timeout == seconds


async def test_a_prompt_names_its_executor(harness: Harness, fake):
    fake.endpoints.add("ep-other")
    prompt_id = await harness.offload_prompt(executor="runpod:ep-other")
    record = await harness.finish(prompt_id)
    assert record.status == "success" and record.executor == "runpod:ep-other"
    (run,) = run_requests(fake)
    assert run.endswith("/ep-other/run")
    answer = await (await harness.client.get("/parallel/offload/jobs")).json()
    (job,) = answer["jobs"]
    assert job["executor"] == "runpod:ep-other" and job["endpoint_id"] == "ep-other"


@pytest.mark.parametrize(
    ("extra", "kind", "field"),
    [
        ({"executor": "local"}, "local_executor", "executor"),
        ({"executor": "elsewhere:gpu2"}, "unknown_executor", "executor"),
        ({"executor": "runpod:a", "endpoint_id": "b"}, "invalid_request", "endpoint_id"),
        ({"executor": "runpod:no spaces"}, "invalid_request", "executor"),
    ],
)
async def test_executors_that_cannot_run_it_are_refused(harness, fake, extra, kind, field):
    body = {"prompt": simple_prompt(), "client_id": "tab-1", **extra}
    status, answer = await harness.post("/parallel/offload/prompt", body)
    assert status == 400, answer
    assert (answer["error"]["type"], answer["error"].get("field")) == (kind, field)
    assert run_requests(fake) == [] and harness.relay.registry.all() == []


async def test_the_executor_list_says_how_busy_each_one_is(harness: Harness, fake):
    fake.simulate = Outcome(worker_time=30)
    first = await harness.offload_prompt()
    second = await harness.offload_prompt()
    await wait_until(lambda: len(fake.jobs) == 2, "both jobs on the fake")
    answer = await (await harness.client.get("/parallel/executors")).json()
    local, runpod = answer["executors"]
    assert local == {"executor": "local", "kind": "local"}
    assert runpod["executor"] == "runpod:ep-test" and runpod["kind"] == "runpod"
    health = runpod["health"]
    assert health["reachable"] is True and health["queued"] + health["running"] == 2
    for prompt_id in (first, second):
        await harness.post("/parallel/offload/cancel", {"prompt_id": prompt_id})


async def test_an_unreachable_executor_is_listed_as_such(tmp_path, aiohttp_client):
    env = {"RUNPOD_API_KEY": SECRET_KEY, "RUNPOD_ENDPOINT_ID": "ep-test"}
    env["RUNPOD_ENDPOINT_BASE_URL"] = "http://127.0.0.1:9/v2"  # nothing listens on port 9
    app, _offload, _server = build_app(tmp_path, env)
    client = await aiohttp_client(app)
    answer = await (await client.get("/parallel/executors")).json()
    health = answer["executors"][1]["health"]
    assert health["reachable"] is False and "no answer from RunPod" in health["detail"]
    assert SECRET_KEY not in json.dumps(answer)
