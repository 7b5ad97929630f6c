"""RunpodClient against the loopback fake of RunPod's control plane: every call, every error
mapping, retries (bounded, Retry-After honoured), the pre-send size check, and that the API
key never leaks into a repr, a message or a URL."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from runpod_fake import (
    HOSTILE_FILENAMES,
    FakeRunpod,
    Outcome,
    fake_in_thread,
    png_bytes,
    running_fake,
)

from parallel_runs_node.parallel_runs.files import plain_name
from parallel_runs_node.parallel_runs.runpod.client import (
    MAX_RUN_BYTES,
    RetryPolicy,
    RunpodAuthError,
    RunpodBadRequest,
    RunpodClient,
    RunpodError,
    RunpodNotFound,
    RunpodPayloadTooLarge,
    RunpodRateLimited,
    RunpodServerError,
    parse_retry_after,
)
from parallel_runs_node.parallel_runs.runpod.models import WorkerOutput

KEY = "rpa_SECRET1234567890abcdef"
EP = "ep-test"
FAST = RetryPolicy(retries=3, base_delay=0.001, max_delay=0.01)


@pytest.fixture
async def fake() -> AsyncIterator[FakeRunpod]:
    async with running_fake(api_key=KEY, endpoints=(EP,), simulate=Outcome(worker_time=0.2)) as f:
        yield f


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


class SleepLog:
    """Records the delays the client asks for instead of sleeping them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(fake: FakeRunpod, session: aiohttp.ClientSession, **kw) -> RunpodClient:
    kw.setdefault("retry", FAST)
    return RunpodClient(session, kw.pop("api_key", KEY), fake.base_url, **kw)


async def wait_final(client: RunpodClient, job_id: str, timeout: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status = await client.status(EP, job_id)
        if status.is_final or loop.time() > deadline:
            return status
        await asyncio.sleep(0.05)


# ------------------------------------------------------------------------ calls


async def test_run_status_progress_then_result(fake, session):
    client = client_for(fake, session)
    queued = await client.run(EP, {"workflow": {"1": {"class_type": "EmptyImage"}}})
    assert queued.status in ("IN_QUEUE", "IN_PROGRESS")
    assert fake.job(queued.id).input == {"workflow": {"1": {"class_type": "EmptyImage"}}}

    seen_progress = []
    final = None
    for _ in range(200):
        status = await client.status(EP, queued.id)
        if status.status == "IN_PROGRESS" and status.output:
            seen_progress.append(status.output)
        if status.is_final:
            final = status
            break
        await asyncio.sleep(0.02)
    assert final is not None and final.status == "COMPLETED"
    assert seen_progress and seen_progress[0]["kind"] == "progress"
    assert final.executionTime is not None
    output = WorkerOutput.model_validate(final.output)
    assert base64.b64decode(output.images[0].data) == png_bytes()


async def test_every_request_carries_the_key_only_in_the_header(fake, session):
    client = client_for(fake, session)
    job = await client.run(EP, {"x": 1})
    await client.status(EP, job.id)
    await client.cancel(EP, job.id)
    assert len(fake.requests) == 3
    for _method, path, headers in fake.requests:
        assert KEY not in path
        assert headers["Authorization"] == f"Bearer {KEY}"


async def test_cancel_running_job(fake, session):
    fake.simulate = Outcome(worker_time=30.0, steps=300)
    client = client_for(fake, session)
    job = await client.run(EP, {})
    cancelled = await client.cancel(EP, job.id)
    assert cancelled.status == "CANCELLED"
    assert (await client.status(EP, job.id)).status == "CANCELLED"


async def test_cancel_queued_job_removes_it_from_the_queue(fake, session):
    fake.simulate = None
    client = client_for(fake, session)
    job = await client.run(EP, {})
    assert (await client.cancel(EP, job.id)).status == "CANCELLED"
    assert (await client.status(EP, job.id)).status == "CANCELLED"


async def test_failed_job_reports_error(fake, session):
    fake.outcomes.append(Outcome(kind="fail", worker_time=0.01, steps=1, error="boom"))
    client = client_for(fake, session)
    final = await wait_final(client, (await client.run(EP, {})).id)
    assert final.status == "FAILED" and final.error == "boom"


async def test_completed_without_output(fake, session):
    fake.outcomes.append(Outcome(kind="no_output", worker_time=0.01, steps=1))
    client = client_for(fake, session)
    final = await wait_final(client, (await client.run(EP, {})).id)
    assert final.status == "COMPLETED" and final.output is None


async def test_hostile_filenames_are_sanitized_by_the_model(fake, session):
    fake.outcomes.append(Outcome(kind="hostile", worker_time=0.01, steps=1))
    client = client_for(fake, session)
    final = await wait_final(client, (await client.run(EP, {})).id)
    names = [image.safe_filename for image in WorkerOutput.model_validate(final.output).images]
    assert len(names) == len(HOSTILE_FILENAMES)
    for name in names:
        assert "/" not in name and "\\" not in name and "\0" not in name
        assert not name.startswith(".") and 0 < len(name) <= 128
    assert plain_name("../../escape.png") == "escape.png"


async def test_expired_result_is_not_found(fake, session):
    fake.result_ttl = 0.0
    fake.outcomes.append(Outcome(worker_time=0.01, steps=1))
    client = client_for(fake, session)
    job = await client.run(EP, {})
    simulated = fake.job(job.id)
    deadline = asyncio.get_running_loop().time() + 10
    while simulated.finished is None:  # the simulated worker's end, not a guessed delay
        assert asyncio.get_running_loop().time() < deadline, "the simulated job never finished"
        await asyncio.sleep(0.01)
    with pytest.raises(RunpodNotFound):
        await client.status(EP, job.id)


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize("status", [401, 403])
async def test_wrong_key_is_an_auth_error(fake, session, status):
    fake.auth_status = status
    client = client_for(fake, session, api_key="rpa_WRONGKEY999")
    with pytest.raises(RunpodAuthError) as caught:
        await client.run(EP, {})
    assert caught.value.status == status
    assert str(caught.value) == "RunPod rejected the API key"
    assert "WRONGKEY" not in repr(caught.value)
    assert len(fake.requests) == 1  # not retried


async def test_empty_key_refused_before_any_request(session):
    with pytest.raises(RunpodAuthError):
        RunpodClient(session, "", "http://127.0.0.1:9/v2")


async def test_unknown_endpoint_and_job_are_not_found(fake, session):
    client = client_for(fake, session)
    with pytest.raises(RunpodNotFound) as caught:
        await client.run("ep-nope", {})
    assert caught.value.status == 404
    with pytest.raises(RunpodNotFound):
        await client.status(EP, "no-such-job")
    with pytest.raises(RunpodNotFound):
        await client.cancel("ep-nope", "no-such-job")


@pytest.mark.parametrize("bad", ["../other", "a/b", "x?y=1", "", "id with space"])
async def test_invalid_ids_never_reach_the_network(fake, session, bad):
    client = client_for(fake, session)
    with pytest.raises(RunpodBadRequest):
        await client.status(EP, bad)
    with pytest.raises(RunpodBadRequest):
        await client.run(bad, {})
    assert fake.requests == []


async def test_429_burst_is_retried_then_succeeds(fake, session):
    fake.inject(429, times=2, route="run")
    sleeps = SleepLog()
    client = client_for(fake, session, sleep=sleeps)
    job = await client.run(EP, {})
    assert job.id in fake.jobs
    assert len(fake.requests) == 3 and len(sleeps.delays) == 2
    assert sleeps.delays[0] <= sleeps.delays[1]  # exponential backoff


async def test_retry_after_is_honoured(fake, session):
    sleeps = SleepLog()
    client = client_for(fake, session, sleep=sleeps)
    job = await client.run(EP, {})
    fake.inject(429, times=1, retry_after="3")
    await client.status(EP, job.id)
    assert sleeps.delays == [3.0]


async def test_excessive_retry_after_fails_fast(fake, session):
    fake.inject(429, times=1, retry_after="3600")
    sleeps = SleepLog()
    client = client_for(fake, session, sleep=sleeps)
    with pytest.raises(RunpodRateLimited):
        await client.status(EP, "j-1")
    assert sleeps.delays == []


async def test_429_retries_are_bounded(fake, session):
    fake.inject(429, times=100)
    sleeps = SleepLog()
    client = client_for(fake, session, sleep=sleeps)
    with pytest.raises(RunpodRateLimited) as caught:
        await client.run(EP, {})
    assert caught.value.status == 429
    assert len(fake.requests) == FAST.retries + 1 and len(sleeps.delays) == FAST.retries
    assert fake.jobs == {}


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_retried_then_success(fake, session, status):
    fake.inject(status, times=1, route="status")
    client = client_for(fake, session, sleep=SleepLog())
    job = await client.run(EP, {})
    assert (await client.status(EP, job.id)).id == job.id


async def test_5xx_retries_are_bounded(fake, session):
    fake.inject(503, times=100)
    client = client_for(fake, session, sleep=SleepLog())
    with pytest.raises(RunpodServerError) as caught:
        await client.status(EP, "j-1")
    assert caught.value.status == 503 and "503" in str(caught.value)


async def test_unreachable_runpod_is_a_server_error(session):
    client = RunpodClient(session, KEY, "http://127.0.0.1:9/v2", FAST, sleep=SleepLog())
    with pytest.raises(RunpodServerError) as caught:
        await client.run(EP, {})
    assert caught.value.status == 0 and KEY not in str(caught.value)


class RawAnswers:
    """A misbehaving HTTP peer (a proxy, a cut connection): answers every request with the
    same raw bytes, then closes. Counts the requests."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        await reader.readexactly(length)
        self.requests += 1
        writer.write(self.answer)
        await writer.drain()
        writer.close()


@asynccontextmanager
async def raw_peer(answer: bytes) -> AsyncIterator[tuple[RawAnswers, str]]:
    peer = RawAnswers(answer)
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield peer, f"http://127.0.0.1:{port}/v2"
    finally:
        server.close()
        await server.wait_closed()


def http_answer(status: str, body: bytes, length: int | None = None) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def test_truncated_body_is_a_network_error_retried_for_gets_only(session):
    """Content-Length promises more than arrives (aiohttp's ClientPayloadError)."""
    async with raw_peer(http_answer("200 OK", b'{"id": "j-1", "sta', length=500)) as (peer, url):
        sleeps = SleepLog()
        client = RunpodClient(session, KEY, url, FAST, sleep=sleeps)
        with pytest.raises(RunpodServerError) as caught:
            await client.status(EP, "j-1")
        assert caught.value.status == 0 and "ClientPayloadError" in caught.value.message
        assert peer.requests == FAST.retries + 1 and len(sleeps.delays) == FAST.retries
        peer.requests = 0
        with pytest.raises(RunpodServerError) as caught:
            await client.run(EP, {})  # may have reached RunPod: never repeated
        assert caught.value.status == 0 and peer.requests == 1
        assert KEY not in caught.value.message


@pytest.mark.parametrize(
    ("status", "error", "words"),
    [
        ("400 Bad Request", RunpodBadRequest, "RunPod rejected the request: \ufffd\ufffd bad"),
        ("503 Service Unavailable", RunpodServerError, "HTTP 503: \ufffd\ufffd bad"),
        ("200 OK", RunpodServerError, "HTTP 200 with something other than JSON: '\ufffd\ufffd bad"),
    ],
)
async def test_a_body_that_is_not_utf8_is_read_not_raised(session, status, error, words):
    async with raw_peer(http_answer(status, b"\xff\xfe bad \xc3")) as (_peer, url):
        client = RunpodClient(session, KEY, url, FAST, sleep=SleepLog())
        with pytest.raises(error) as caught:
            await client.status(EP, "j-1")
        assert words in caught.value.message


@pytest.mark.parametrize("job_id", ["j/../other", "a" * 129, "j 1", ""])
async def test_a_job_id_the_client_could_not_ask_about_again_is_refused(session, job_id):
    """/run's answer names the job every later request goes to: an id that would not pass as
    a URL path part is an unexpected answer at once, not a job that can never be followed."""
    body = json.dumps({"id": job_id, "status": "IN_QUEUE"}).encode()
    async with raw_peer(http_answer("200 OK", body)) as (_peer, url):
        client = RunpodClient(session, KEY, url, FAST, sleep=SleepLog())
        with pytest.raises(RunpodServerError) as caught:
            await client.run(EP, {})
        assert "id" in caught.value.message


def test_backoff_is_bounded_and_jittered():
    policy = RetryPolicy(base_delay=1.0, max_delay=4.0, jitter=0.5)
    delays = [policy.backoff(n) for n in range(8)]
    assert all(1.0 <= d <= 6.0 for d in delays)
    assert max(delays[3:]) <= 6.0 and min(delays[3:]) >= 4.0
    assert parse_retry_after("7") == 7.0 and parse_retry_after("garbage") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# ------------------------------------------------------------------------ size check


async def test_oversized_input_is_refused_before_sending(fake, session):
    client = client_for(fake, session)
    big = {"images": [{"name": "a.png", "image": "A" * (MAX_RUN_BYTES + 1)}]}
    with pytest.raises(RunpodPayloadTooLarge) as caught:
        await client.run(EP, big)
    assert caught.value.size > MAX_RUN_BYTES and str(caught.value.size) in str(caught.value)
    assert fake.requests == []


async def test_input_just_under_the_limit_is_sent(fake, session):
    fake.simulate = None
    client = client_for(fake, session)
    overhead = len('{"input":{"blob":""}}')
    job = await client.run(EP, {"blob": "A" * (MAX_RUN_BYTES - overhead)})
    assert job.id in fake.jobs


async def test_oversized_result_is_still_readable(fake, session):
    fake.outcomes.append(Outcome(kind="oversized", worker_time=0.01, steps=1, oversize_bytes=2**20))
    client = client_for(fake, session)
    final = await wait_final(client, (await client.run(EP, {})).id)
    image = WorkerOutput.model_validate(final.output).images[0]
    assert len(base64.b64decode(image.data)) == 2**20


# ------------------------------------------------------------------------ secrecy


async def test_key_never_in_repr_str_or_messages(fake, session):
    client = client_for(fake, session)
    assert KEY not in repr(client) and KEY not in str(client)
    assert "<hidden>" in repr(client)
    errors: list[RunpodError] = []
    for action in (
        lambda: client.run("ep-nope", {}),
        lambda: client_for(fake, session, api_key=KEY + "x").status(EP, "j-1"),
        lambda: RunpodClient(session, KEY, "http://127.0.0.1:9/v2", FAST, sleep=SleepLog()).status(
            EP, "j-1"
        ),
    ):
        with pytest.raises(RunpodError) as caught:
            await action()
        errors.append(caught.value)
    fake.inject(500, times=10)
    with pytest.raises(RunpodError) as caught:
        await client.status(EP, "j-1")
    errors.append(caught.value)
    for error in errors:
        for text in (str(error), repr(error), error.message, str(error.args)):
            assert KEY not in text


async def test_key_echoed_by_a_server_is_scrubbed(session):
    """A misbehaving proxy that echoes the Authorization header must not leak it."""
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"error": request.headers["Authorization"]}, status=400)

    app = web.Application()
    app.router.add_get("/v2/{ep}/status/{job}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        client = RunpodClient(session, KEY, f"http://127.0.0.1:{port}/v2")
        with pytest.raises(RunpodBadRequest) as caught:
            await client.status(EP, "j-1")
        assert KEY not in str(caught.value) and "<hidden>" in str(caught.value)
    finally:
        await runner.cleanup()


def test_thread_fake_serves_sync_callers():
    """The thread variant: reachable from plain blocking code (or another process)."""
    import json
    import urllib.request

    with fake_in_thread(api_key=KEY, simulate=Outcome(worker_time=0.01, steps=1)) as threaded:
        request = urllib.request.Request(
            f"{threaded.base_url}/{EP}/run",
            data=json.dumps({"input": {"a": 1}}).encode(),
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            job_id = json.load(response)["id"]
        assert threaded.job(job_id).input == {"a": 1}


async def test_timed_out_job(fake, session):
    fake.outcomes.append(Outcome(kind="timeout", worker_time=0.01, steps=1))
    client = client_for(fake, session)
    final = await wait_final(client, (await client.run(EP, {})).id)
    assert final.status == "TIMED_OUT" and final.output is None and final.is_final
