"""A loopback fake of RunPod's serverless control plane, for tests and benchmarks.

It serves the client API (`/v2/{ep}/run|status|stream|cancel|health`, Bearer key) and the
routes the unmodified `runpod` worker SDK talks to (job-take long-poll, job-done, job-stream,
job-stop long-poll, ping), so a real worker loop can run against it. Without a worker it can
play one itself (`simulate=`), with a fixed worker time, for benchmarks. Knobs inject faults.

Use it as `async with running_fake() as fake:` in async tests, `with fake_in_thread() as fake:`
in sync tests (or when another process, such as ComfyUI, must reach it), and
`start_worker(fake, comfy_url)` for the real worker loop in a subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
MAX_RUN_BYTES = 10 * 1024 * 1024
FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})

HOSTILE_FILENAMES = (
    "../../escape.png",
    "/etc/passwd",
    "..\\..\\windows.png",
    "sub/dir/../../x.png",
    "nul\x00byte.png",
    ".hidden.png",
    "CON",
    "a" * 300 + ".png",
)


def png_bytes(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid RGB PNG without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


# --------------------------------------------------------------------------- state


@dataclass
class Outcome:
    """How a simulated worker ends a job."""

    kind: str = "complete"  # complete | fail | no_output | oversized | hostile | timeout
    worker_time: float = 0.2
    steps: int = 4
    oversize_bytes: int = 12 * 1024 * 1024
    error: str = "simulated worker failure"
    # a progress value's `preview` ({"node", "image_type", "data"}; anything, to test hostile
    # ones), posted from the second step on, as the worker repeats its latest preview
    preview: Any = None
    # complete: one image per node id, each entry naming its node (our worker's extension)
    output_nodes: tuple[str, ...] = ()
    # the body the worker posts at the end, verbatim (a hostile or broken worker)
    result: dict[str, Any] | None = None
    # when set: the job stays IN_PROGRESS after its steps until the test sets this event (a job
    # that must still run at some point of a test, however slow the machine)
    hold: threading.Event | None = None


@dataclass
class Injection:
    status: int
    times: int
    retry_after: str | None = None
    route: str | None = None  # run | status | stream | cancel | health; None = any


@dataclass
class FakeJob:
    id: str
    endpoint: str
    input: Any
    status: str = "IN_QUEUE"
    output: Any = None
    error: Any = None
    worker_id: str | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    stream: list[Any] = field(default_factory=list)
    progress: list[Any] = field(default_factory=list)  # every progress value, for assertions
    results_posted: int = 0

    def answer(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.started is not None:
            body["delayTime"] = int((self.started - self.created) * 1000)
        if self.finished is not None and self.started is not None:
            body["executionTime"] = int((self.finished - self.started) * 1000)
        if self.output is not None:
            body["output"] = self.output
        if self.error is not None:
            body["error"] = self.error
        if self.worker_id:
            body["workerId"] = self.worker_id
        return body


# --------------------------------------------------------------------------- the fake


class FakeRunpod:
    """The fake's state and aiohttp app. Attributes are knobs tests may change at any time."""

    def __init__(
        self,
        api_key: str = "test-key",
        endpoints: tuple[str, ...] = ("ep-test",),
        *,
        worker_key: str = "worker-key-5d1e0c7a9b3f",
        result_ttl: float = 1800.0,
        take_poll: float = 2.0,
        stop_poll: float = 2.0,
        simulate: Outcome | None = None,
        max_run_bytes: int = MAX_RUN_BYTES,
    ) -> None:
        self.api_key = api_key
        self.endpoints = set(endpoints)
        self.worker_key = worker_key
        self.result_ttl = result_ttl
        self.take_poll = take_poll
        self.stop_poll = stop_poll
        self.simulate = simulate
        self.outcomes: deque[Outcome] = deque()  # per-job outcomes, before `simulate`
        self.max_run_bytes = max_run_bytes
        self.auth_status = 401
        self.injections: list[Injection] = []
        # job id -> what /status answers for it instead of the truth (a hostile or broken
        # RunPod, or a proxy in front of it): a coroutine function taking the request and job
        self.status_answers: dict[str, Any] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path+query, headers
        self.pings: list[str] = []
        self.base_url = ""  # http://127.0.0.1:PORT/v2 once started
        self._queue: dict[str, deque[str]] = {}
        self._stops: dict[str, set[str]] = {}  # worker id -> job ids to stop
        self._idle_workers: dict[str, set[str]] = {}
        self._changed: asyncio.Condition | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- knobs

    def inject(
        self, status: int, times: int = 1, retry_after: str | None = None, route: str | None = None
    ) -> None:
        """Answer the next `times` client requests (optionally of one route) with `status`."""
        self.injections.append(Injection(status, times, retry_after, route))

    def job(self, job_id: str) -> FakeJob:
        return self.jobs[job_id]

    def worker_env(self, endpoint_id: str = "ep-test", pod_id: str = "pod-fake") -> dict[str, str]:
        """Environment for the unmodified runpod worker loop, pointed at this fake. The
        query string is needed: the SDK appends `&job_in_progress=` and `&isStream=`."""
        base = f"{self.base_url}/{endpoint_id}"
        return {
            "RUNPOD_WEBHOOK_GET_JOB": f"{base}/job-take/$ID?gpu=fake",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{base}/job-done/$RUNPOD_POD_ID/$ID?gpu=fake",
            "RUNPOD_WEBHOOK_POST_STREAM": f"{base}/job-stream/$RUNPOD_POD_ID/$ID?gpu=fake",
            "RUNPOD_WEBHOOK_PING": f"{base}/ping/$RUNPOD_POD_ID?gpu=fake",
            "RUNPOD_PING_INTERVAL": "1000",
            "RUNPOD_POD_ID": pod_id,
            "RUNPOD_AI_API_KEY": self.worker_key,
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
        }

    # ---------------------------------------------------------------- app

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._record])
        v2 = "/v2/{ep}"
        app.add_routes(
            [
                web.post(f"{v2}/run", self._run),
                web.get(f"{v2}/status/{{job}}", self._status),
                web.get(f"{v2}/stream/{{job}}", self._stream),
                web.post(f"{v2}/cancel/{{job}}", self._cancel),
                web.get(f"{v2}/health", self._health),
                web.get(f"{v2}/job-take/{{worker}}", self._take),
                web.get(f"{v2}/job-take-batch/{{worker}}", self._take),
                web.get(f"{v2}/job-stop/{{worker}}", self._stop),
                web.post(f"{v2}/job-done/{{pod}}/{{job}}", self._done),
                web.post(f"{v2}/job-stream/{{pod}}/{{job}}", self._stream_post),
                web.get(f"{v2}/ping/{{pod}}", self._ping),
            ]
        )
        app.on_startup.append(self._bind_loop)
        app.on_cleanup.append(self._cancel_tasks)
        return app

    async def _bind_loop(self, _app: web.Application) -> None:
        self._changed = asyncio.Condition()

    async def _cancel_tasks(self, _app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _wait_change(self, timeout: float) -> None:
        assert self._changed is not None
        async with self._changed:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        return await handler(request)

    # ---------------------------------------------------------------- client routes

    def _client_gate(self, request: web.Request, route: str) -> web.Response | None:
        """Key, endpoint and injected faults, in RunPod's order."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": "Unauthorized"}, status=self.auth_status)
        for injection in self.injections:
            if injection.times > 0 and injection.route in (None, route):
                injection.times -= 1
                headers = {"Retry-After": injection.retry_after} if injection.retry_after else {}
                return web.json_response(
                    {"error": f"injected {injection.status}"},
                    status=injection.status,
                    headers=headers,
                )
        if request.match_info["ep"] not in self.endpoints:
            return web.json_response({"error": "endpoint not found"}, status=404)
        return None

    def _find(self, request: web.Request) -> FakeJob | None:
        job = self.jobs.get(request.match_info["job"])
        if job is None or job.endpoint != request.match_info["ep"]:
            return None
        if job.finished is not None and time.monotonic() - job.finished > self.result_ttl:
            del self.jobs[job.id]  # RunPod forgets results after their retention time
            return None
        return job

    async def _run(self, request: web.Request) -> web.Response:
        if (refused := self._client_gate(request, "run")) is not None:
            return refused
        raw = await request.read()
        if len(raw) > self.max_run_bytes:
            return web.json_response({"error": "request body too large"}, status=413)
        try:
            body = json.loads(raw)
            job_input = body["input"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "body must be JSON with an 'input'"}, status=400)
        ep = request.match_info["ep"]
        job = FakeJob(id=f"{uuid.uuid4()}-u1", endpoint=ep, input=job_input)
        self.jobs[job.id] = job
        outcome = self.outcomes.popleft() if self.outcomes else self.simulate
        if outcome is not None:
            self._spawn(self._simulate(job, outcome))
        else:
            self._queue.setdefault(ep, deque()).append(job.id)
            await self._notify()
        return web.json_response({"id": job.id, "status": job.status})

    async def _status(self, request: web.Request) -> web.Response:
        if (refused := self._client_gate(request, "status")) is not None:
            return refused
        job = self._find(request)
        if job is None:
            return web.json_response({"error": "request does not exist"}, status=404)
        if (hostile := self.status_answers.get(job.id)) is not None:
            return await hostile(request, job)
        return web.json_response(job.answer())

    async def _stream(self, request: web.Request) -> web.Response:
        if (refused := self._client_gate(request, "stream")) is not None:
            return refused
        job = self._find(request)
        if job is None:
            return web.json_response({"error": "request does not exist"}, status=404)
        chunks, job.stream = job.stream, []
        return web.json_response(
            {"id": job.id, "status": job.status, "stream": [{"output": c} for c in chunks]}
        )

    async def _cancel(self, request: web.Request) -> web.Response:
        if (refused := self._client_gate(request, "cancel")) is not None:
            return refused
        job = self._find(request)
        if job is None:
            return web.json_response({"error": "request does not exist"}, status=404)
        if job.status not in FINAL:
            queue = self._queue.get(job.endpoint, deque())
            if job.id in queue:
                queue.remove(job.id)
            if job.worker_id:
                self._stops.setdefault(job.worker_id, set()).add(job.id)
            for task in list(self._tasks):
                if task.get_name() == f"sim-{job.id}":
                    task.cancel()
            job.status, job.finished = "CANCELLED", time.monotonic()
            await self._notify()
        return web.json_response({"id": job.id, "status": job.status})

    async def _health(self, request: web.Request) -> web.Response:
        if (refused := self._client_gate(request, "health")) is not None:
            return refused
        ep = request.match_info["ep"]
        jobs = [j for j in self.jobs.values() if j.endpoint == ep]

        def count(*states: str) -> int:
            return sum(1 for j in jobs if j.status in states)

        busy = {j.worker_id for j in jobs if j.status == "IN_PROGRESS" and j.worker_id}
        idle = self._idle_workers.get(ep, set()) - busy
        return web.json_response(
            {
                "jobs": {
                    "completed": count("COMPLETED"),
                    "failed": count("FAILED", "TIMED_OUT"),
                    "inProgress": count("IN_PROGRESS"),
                    "inQueue": count("IN_QUEUE"),
                    "retried": 0,
                },
                "workers": {"idle": len(idle), "running": len(busy)},
            }
        )

    # ---------------------------------------------------------------- worker routes

    def _worker_gate(self, request: web.Request) -> web.Response | None:
        if self.worker_key and request.headers.get("Authorization") != self.worker_key:
            return web.json_response({"error": "Unauthorized worker"}, status=401)
        if request.match_info["ep"] not in self.endpoints:
            return web.json_response({"error": "endpoint not found"}, status=404)
        return None

    async def _take(self, request: web.Request) -> web.Response:
        """Long-poll: hand the next queued job to this worker, or 204 after `take_poll`."""
        if (refused := self._worker_gate(request)) is not None:
            return refused
        ep, worker = request.match_info["ep"], request.match_info["worker"]
        deadline = time.monotonic() + self.take_poll
        idle = self._idle_workers.setdefault(ep, set())
        idle.add(worker)
        try:
            while True:
                queue = self._queue.get(ep)
                if queue:
                    job = self.jobs[queue.popleft()]
                    job.status, job.worker_id, job.started = "IN_PROGRESS", worker, time.monotonic()
                    payload = {"id": job.id, "input": job.input}
                    if "batch" in request.path:
                        return web.json_response([payload])
                    return web.json_response(payload)
                left = deadline - time.monotonic()
                if left <= 0:
                    return web.Response(status=204)
                await self._wait_change(left)
        finally:
            idle.discard(worker)

    async def _stop(self, request: web.Request) -> web.Response:
        """Long-poll of the worker's stop channel: `{"jobsToStop": [...]}` or 204."""
        if (refused := self._worker_gate(request)) is not None:
            return refused
        worker = request.match_info["worker"]
        deadline = time.monotonic() + self.stop_poll
        while True:
            pending = self._stops.pop(worker, set())
            if pending:
                return web.json_response({"jobsToStop": sorted(pending)})
            left = deadline - time.monotonic()
            if left <= 0:
                return web.Response(status=204)
            await self._wait_change(left)

    async def _worker_body(self, request: web.Request) -> tuple[FakeJob | None, Any]:
        # The SDK posts JSON text labelled as a form; read it as text.
        job = self.jobs.get(request.match_info["job"])
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = None
        return job, body

    async def _done(self, request: web.Request) -> web.Response:
        if (refused := self._worker_gate(request)) is not None:
            return refused
        job, body = await self._worker_body(request)
        if job is None or not isinstance(body, dict):
            return web.json_response({"error": "unknown job or bad body"}, status=400)
        if job.status != "IN_PROGRESS":
            return web.json_response({"ignored": job.status})  # e.g. cancelled meanwhile
        if body.get("status") == "IN_PROGRESS":  # runpod.serverless.progress_update
            job.output = body.get("output")
            job.progress.append(job.output)
        else:
            job.results_posted += 1
            self._finish(job, body)
        await self._notify()
        return web.json_response({})

    def _finish(self, job: FakeJob, body: dict[str, Any]) -> None:
        job.finished = time.monotonic()
        if body.get("error"):
            job.status, job.error, job.output = "FAILED", body["error"], body.get("output")
        else:
            job.status, job.output = "COMPLETED", body.get("output")

    async def _stream_post(self, request: web.Request) -> web.Response:
        if (refused := self._worker_gate(request)) is not None:
            return refused
        job, body = await self._worker_body(request)
        if job is None or not isinstance(body, dict):
            return web.json_response({"error": "unknown job or bad body"}, status=400)
        job.stream.append(body.get("output"))
        return web.json_response({})

    async def _ping(self, request: web.Request) -> web.Response:
        if (refused := self._worker_gate(request)) is not None:
            return refused
        self.pings.append(request.match_info["pod"])
        return web.json_response({})

    # ---------------------------------------------------------------- simulated worker

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _simulate(self, job: FakeJob, outcome: Outcome) -> None:
        asyncio.current_task().set_name(f"sim-{job.id}")  # type: ignore[union-attr]
        job.status, job.worker_id, job.started = "IN_PROGRESS", "sim-worker", time.monotonic()
        for step in range(1, outcome.steps + 1):
            await asyncio.sleep(outcome.worker_time / outcome.steps)
            job.output = {"kind": "progress", "seq": step, "node": "1", "value": step,
                          "max": outcome.steps, "executing": "1", "nodes_done": []}  # fmt: skip
            if outcome.preview is not None and step > 1:
                job.output["preview"] = outcome.preview
            job.progress.append(job.output)
        while outcome.hold is not None and not outcome.hold.is_set():
            await asyncio.sleep(0.02)  # polled: a thread blocked on it would outlive the fake
        if job.status != "IN_PROGRESS":
            return
        if outcome.kind == "timeout":  # RunPod's execution timeout: no result at all
            job.status, job.output, job.finished = "TIMED_OUT", None, time.monotonic()
        else:
            self._finish(job, simulated_result(outcome))
        await self._notify()


def simulated_result(outcome: Outcome) -> dict[str, Any]:
    """The body a worker would post for this outcome (worker-comfyui shapes)."""
    if outcome.result is not None:
        return outcome.result
    image = base64.b64encode(png_bytes()).decode()
    if outcome.kind == "fail":
        return {"error": outcome.error}
    if outcome.kind == "no_output":
        return {}
    if outcome.kind == "oversized":
        data = base64.b64encode(b"\0" * outcome.oversize_bytes).decode()
        return {"output": {"images": [{"filename": "big.png", "type": "base64", "data": data}]}}
    if outcome.kind == "hostile":
        images = [{"filename": n, "type": "base64", "data": image} for n in HOSTILE_FILENAMES]
        return {"output": {"images": images}}
    if outcome.output_nodes:
        images = [
            {
                "filename": f"node{node}_00001_.png",
                "type": "base64",
                "data": base64.b64encode(png_bytes(4 + i, 4, (10 * i, 0, 0))).decode(),
                "node": node,
            }
            for i, node in enumerate(outcome.output_nodes)
        ]
        return {"output": {"images": images}}
    return {
        "output": {"images": [{"filename": "fake_00001_.png", "type": "base64", "data": image}]}
    }


# --------------------------------------------------------------------------- runners


@contextlib.asynccontextmanager
async def running_fake(**options: Any) -> AsyncIterator[FakeRunpod]:
    """Start the fake in the current event loop on 127.0.0.1 and a free port."""
    fake = FakeRunpod(**options)
    runner = web.AppRunner(fake.app(), shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}/v2"
    try:
        yield fake
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def fake_in_thread(**options: Any) -> Iterator[FakeRunpod]:
    """The fake on its own loop in a daemon thread: for sync tests, or when another process
    (a ComfyUI server under test) must reach it. Knobs are plain attributes; set them freely."""
    loop = asyncio.new_event_loop()
    stop = threading.Event()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        async with running_fake(**options) as fake:
            holder["fake"] = fake
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    def target() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as error:  # surfaced to the caller below
            holder["error"] = error
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="runpod-fake", daemon=True)
    thread.start()
    started.wait(10)
    if "fake" not in holder:
        raise RuntimeError(f"fake RunPod did not start: {holder.get('error')!r}")
    try:
        yield holder["fake"]
    finally:
        stop.set()
        thread.join(10)


# --------------------------------------------------------------------------- real worker


@dataclass
class WorkerProcess:
    """The unmodified `runpod.serverless.start` loop with our handler, in a subprocess."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, grace: float = 5.0) -> None:
        if self.proc.poll() is not None:
            return
        # Its own process group: the SDK's heartbeat child goes with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(grace)

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_worker(
    fake: FakeRunpod,
    comfy_url: str,
    log_path: Path,
    *,
    endpoint_id: str = "ep-test",
    pod_id: str = "pod-fake",
    extra_env: dict[str, str] | None = None,
    log_level: str = "INFO",
) -> WorkerProcess:
    """Run `python -m parallel_runs.worker` pointed at the fake and at `comfy_url`."""
    env = {
        **os.environ,
        **fake.worker_env(endpoint_id, pod_id),
        "COMFY_URL": comfy_url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "parallel_runs.worker", "--rp_log_level", log_level],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return WorkerProcess(proc, log_path)


def main() -> None:
    """`python tests/runpod_fake.py [PORT] [--simulate SECONDS]`: serve until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description="loopback fake of RunPod's control plane")
    parser.add_argument("port", type=int, nargs="?", default=8765)
    parser.add_argument("--simulate", type=float, metavar="SECONDS", default=None)
    args = parser.parse_args()
    outcome = Outcome(worker_time=args.simulate) if args.simulate is not None else None
    fake = FakeRunpod(simulate=outcome)
    fake.base_url = f"http://127.0.0.1:{args.port}/v2"
    print(f"fake RunPod on {fake.base_url}, client key {fake.api_key!r}, endpoint ep-test")
    for name, value in fake.worker_env().items():
        print(f"  {name}={value}")
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
