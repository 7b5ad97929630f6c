"""The relay's pure parts (worker progress -> ComfyUI events, previews checked, the poll
planner's budget), and the relay itself against the fake control plane's simulated worker:
previews reach the prompt's client in the layout it negotiated, outputs land on their nodes."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import random
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from offload_harness import OFTEN_POLLS
from PIL import Image
from registry_db import stored_records
from runpod_fake import Outcome, png_bytes, running_fake

from parallel_runs_node.parallel_runs.runpod.client import RunpodClient
from parallel_runs_node.parallel_runs.runpod.models import MAX_PREVIEW_CHARS, JobStatus
from parallel_runs_node.server_routes.executors.endings import JobEndings
from parallel_runs_node.server_routes.executors.outputs import OutputSaver
from parallel_runs_node.server_routes.executors.prompt_events import PromptEvents
from parallel_runs_node.server_routes.executors.records import JobError, JobRecord, SavedFile
from parallel_runs_node.server_routes.executors.registry import JobRegistry
from parallel_runs_node.server_routes.executors.relay import Relay, server_recipients
from parallel_runs_node.server_routes.executors.runpod.config import OffloadConfig
from parallel_runs_node.server_routes.executors.runpod.events import (
    EventMapper,
    read_preview,
    worker_error_text,
)
from parallel_runs_node.server_routes.executors.runpod.executor import (
    RunpodExecutor,
    result_update,
)
from parallel_runs_node.server_routes.executors.runpod.poll_planner import PollPlanner

TYPES = {"1": "EmptyImage", "2": "KSampler", "3": "SaveImage"}


def progress(**fields) -> dict:
    return {"kind": "progress", **fields}


def test_a_prompt_starts_once():
    events = PromptEvents("p1", TYPES)
    assert [e for e, _ in events.start()] == ["execution_start"]
    assert events.start() == []
    resumed = PromptEvents("p2", TYPES)
    resumed.observe([("execution_start", {"prompt_id": "p2"})])  # relayed before
    assert resumed.start() == []


def test_progress_maps_to_comfy_events():
    mapper = EventMapper("p1")
    events = mapper.progress(progress(node="2", value=3, max=10, executing="2", nodes_done=["1"]))
    assert [e for e, _ in events] == ["executing", "progress", "progress_state"]
    assert events[0][1] == {"node": "2", "display_node": "2", "prompt_id": "p1"}
    assert events[1][1] == {"value": 3, "max": 10, "prompt_id": "p1", "node": "2"}
    nodes = events[2][1]["nodes"]
    assert nodes["1"]["state"] == "finished" and nodes["2"]["state"] == "running"
    assert nodes["2"]["value"] == 3 and nodes["2"]["real_node_id"] == "2"
    assert (mapper.progress_node, mapper.node_fraction) == ("2", 0.3)

    assert mapper.progress(progress(node="2", value=3, max=10, executing="2")) == []  # no change
    text = mapper.progress(progress(executing="2", text={"2": "step 4"}))
    assert text == [
        (
            "parallel.progress_text",
            {"prompt_id": "p1", "node": "2", "display_node": "2", "text": "step 4"},
        )
    ]


def test_garbage_progress_is_ignored():
    mapper = EventMapper("p1")
    for value in (None, "text", [1, 2], {"kind": "other"}, {"value": "x"}):
        assert mapper.progress(value) == []


def relayed(*posts: dict) -> PromptEvents:
    """A prompt's ending events after the worker's `posts` were relayed."""
    mapper, events = EventMapper("p1"), PromptEvents("p1", TYPES)
    for post in posts:
        events.observe(mapper.progress(post))
    return events


def test_endings_name_the_running_node_and_the_finished_ones():
    events = relayed(progress(executing="2", nodes_done=["1"]))
    error, _ = events.error(JobError(type="RemoteError", message="boom"))
    assert error[0] == "execution_error"
    assert error[1]["node_id"] == "2" and error[1]["node_type"] == "KSampler"
    assert error[1]["executed"] == ["1"] and error[1]["exception_message"] == "boom"
    interrupted, _ = events.interrupted()
    assert interrupted[1]["node_id"] == "2" and interrupted[0] == "execution_interrupted"


def test_every_ending_is_followed_by_executing_null_as_stock_comfyui_sends_it():
    # ComfyUI 0.3.75: execution.py sends the final event, then main.py's prompt_worker sends
    # `executing {"node": None, "prompt_id"}` (no display_node) however the prompt ended
    events = relayed(progress(executing="2"))
    endings = {
        "execution_success": events.success(),
        "execution_error": events.error(JobError(type="RemoteError", message="boom")),
        "execution_interrupted": events.interrupted(),
    }
    for final, sent in endings.items():
        assert [e for e, _ in sent] == [final, "executing"]
        assert sent[0][1]["prompt_id"] == "p1"
        assert sent[-1][1] == {"node": None, "prompt_id": "p1"}


def test_progress_posts_that_arrive_late_are_dropped():
    mapper = EventMapper("p1")
    mapper.progress(progress(seq=5, node="2", value=5, max=10, executing="2", nodes_done=["1"]))
    assert mapper.progress(progress(seq=4, node="2", value=4, max=10, executing="2")) == []
    assert mapper.progress(progress(seq=2, node="1", value=1, max=2, executing="1")) == []
    assert mapper.executing == "2" and mapper.nodes["1"]["state"] == "finished"
    assert (mapper.progress_node, mapper.node_fraction) == ("2", 0.5)
    assert mapper.preview(progress(seq=3, preview=preview())) is None  # an older preview
    assert mapper.progress(progress(seq=5, node="2", value=5, max=10, executing="2")) == []
    newer = mapper.progress(progress(seq=6, node="2", value=6, max=10, executing="2"))
    assert [d["value"] for e, d in newer if e == "progress"] == [6]
    assert mapper.preview(progress(seq=6, preview=preview())) is not None


def test_posts_without_seq_come_from_older_workers_and_are_all_taken():
    mapper = EventMapper("p1")
    mapper.progress(progress(node="2", value=5, max=10, executing="2"))
    back = mapper.progress(progress(node="2", value=4, max=10, executing="2"))
    assert [d["value"] for e, d in back if e == "progress"] == [4]
    assert mapper.progress(progress(seq=0, executing="1"))[0][0] == "executing"


def test_worker_errors_are_made_readable():
    sdk = '{"error_type": "ValueError", "error_message": "bad seed", "error_traceback": "..."}'
    assert worker_error_text(sdk) == ("ValueError", "bad seed")
    assert worker_error_text("plain text") == ("RemoteError", "plain text")
    assert worker_error_text(None)[1]


phases = st.lists(
    st.tuples(
        st.sampled_from(["IN_QUEUE", "IN_PROGRESS", None]),
        st.one_of(st.none(), st.floats(-5, 30)),
        st.booleans(),  # True: a sibling woke us up early (we re-plan without polling)
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(phases)
def test_the_poll_budget_holds_whatever_happens(steps):
    planner = PollPlanner(started=100.0)
    now = 100.0
    for remote, remaining, woken in steps:
        delay = planner.delay(now, remote, remaining)
        assert delay >= 0
        now += delay / 3 if woken else delay
        if not woken:
            planner.spend(now)
            assert planner.polls <= planner.rate * (now - planner.started) + 1e-9


def test_polls_cluster_around_the_expected_end():
    planner = PollPlanner(started=0.0)
    now, polls = 0.0, []
    while now < 6.0:
        remaining = 5.0 - now  # the job should end at t=5
        now += planner.delay(now, "IN_PROGRESS", remaining)
        planner.spend(now)
        polls.append(round(now, 2))
    before = [t for t in polls if t < 4.5]
    around = [t for t in polls if 4.5 <= t <= 5.5]
    assert len(before) <= 4 and len(around) >= 3, polls
    assert min(t for t in polls if t >= 5.0) <= 5.15  # the end is seen within ~0.1 s


def test_siblings_with_nothing_known_keep_slack_for_a_wake_up():
    """Jobs submitted together, on an endpoint with no history: when one of them sees its job
    end just after a poll (t=2.05) and wakes the others, they can all look at once rather
    than wait for their next budgeted poll (which made a whole burst miss the end by 0.5 s)."""
    seeds = random.Random(7)
    immediate = 0
    beats = set()
    for _ in range(50):
        planner = PollPlanner(started=0.0, rng=random.Random(seeds.random()))
        now = 0.0
        while True:
            wait = planner.delay(now, "IN_PROGRESS", None)
            if now + wait > 2.05:
                break
            now += wait
            planner.spend(now)
            beats.add(round(now, 2))
        immediate += planner.delay(2.05, "IN_PROGRESS", 0.0, woken=True) == 0
    assert len(beats) > 10  # not one shared grid
    assert immediate == 50, immediate


# --------------------------------------------------------------------------- previews


def jpeg(size: tuple[int, int] = (32, 16), color: tuple[int, int, int] = (0, 200, 0)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def preview(node: str = "2", image: bytes | None = None, kind: str = "image/jpeg") -> dict:
    data = base64.b64encode(jpeg() if image is None else image).decode()
    return {"node": node, "image_type": kind, "data": data}


def test_a_preview_is_relayed_once_until_it_changes():
    mapper = EventMapper("p1")
    first = mapper.preview(progress(node="2", value=1, max=4, preview=preview()))
    assert first is not None and (first.node, first.image_type) == ("2", "image/jpeg")
    assert first.image == jpeg()
    assert mapper.preview(progress(node="2", value=2, max=4, preview=preview())) is None
    assert mapper.preview(progress(node="2", value=3, max=4)) is None  # no preview: nothing
    newer = mapper.preview(progress(preview=preview(image=jpeg(color=(9, 9, 9)))))
    assert newer is not None and newer.image == jpeg(color=(9, 9, 9))
    png = mapper.preview(progress(preview=preview("3", png_bytes(), "image/png")))
    assert png is not None and png.legacy_payload() == struct.pack(">I", 2) + png_bytes()
    assert newer.legacy_payload()[:4] == struct.pack(">I", 1)
    assert newer.metadata("p1") == {
        "node_id": "2",
        "display_node_id": "2",
        "parent_node_id": None,
        "real_node_id": "2",
        "prompt_id": "p1",
        "image_type": "image/jpeg",
    }


PNG_B64 = base64.b64encode(png_bytes()).decode()


@pytest.mark.parametrize(
    ("bad", "logged"),
    [
        ({"node": "2", "image_type": "image/jpeg", "data": "not base64 at all!"}, "not base64"),
        ({"node": "2", "image_type": "image/jpeg", "data": "x" * (MAX_PREVIEW_CHARS + 4)}, "data"),
        ({"node": "2", "image_type": "image/gif", "data": "R0lGOD=="}, "image_type"),
        ({"node": "2", "image_type": "image/jpeg", "data": PNG_B64}, "not a image/jpeg"),
        ({"image_type": "image/jpeg", "data": "AAAA"}, "node"),
        ("a string", "preview"),
    ],
)
def test_bad_previews_are_ignored_with_a_log_line(caplog, bad, logged):
    mapper = EventMapper("p1")
    raw = progress(node="2", value=1, max=4, executing="2", preview=bad)
    with caplog.at_level(logging.WARNING):
        assert mapper.preview(raw) is None
        assert mapper.preview(raw) is None  # the same bad value again: not logged again
    assert [e for e, _ in mapper.progress(raw)] == ["executing", "progress", "progress_state"]
    (line,) = [r.getMessage() for r in caplog.records]
    assert logged in line and "ignored" in line
    assert len(line) < 300  # the data itself is never logged


def test_a_preview_that_does_not_decode_or_is_huge_yields_no_picture(caplog):
    truncated = read_preview(progress(preview=preview(image=jpeg()[:40])))
    assert truncated is not None and truncated.picture() is None
    huge = io.BytesIO()
    Image.new("RGB", (3000, 3000)).save(huge, format="PNG")  # ~30 KB, 9 megapixels
    big = read_preview(progress(preview=preview(image=huge.getvalue(), kind="image/png")))
    assert big is not None and big.picture() is None
    assert "too large" in caplog.text
    good = read_preview(progress(preview=preview()))
    assert good is not None and good.picture().size == (32, 16)


@dataclass
class FakePromptServer:
    """What the relay uses of PromptServer: `send_sync`, the sockets and their flags."""

    flags: dict[str, dict[str, Any]]
    sent: list[tuple[Any, Any, str | None]] = field(default_factory=list)

    @property
    def sockets(self) -> dict[str, object]:
        return {sid: object() for sid in self.flags}

    @property
    def sockets_metadata(self) -> dict[str, dict[str, Any]]:
        return {sid: {"feature_flags": flags} for sid, flags in self.flags.items()}

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        self.sent.append((event, data, sid))

    def json_events(self, name: str) -> list[dict[str, Any]]:
        return [d for e, d, _ in self.sent if e == name]

    def binary(self) -> list[tuple[int, Any, str | None]]:
        return [(e, d, s) for e, d, s in self.sent if isinstance(e, int)]


PROMPT_TYPES = {"2": "ParallelRunsSlowPassthrough", "4": "SaveImage", "5": "SaveImage"}


def job_record(client_id: str | None = "tab-new") -> JobRecord:
    return JobRecord(
        prompt_id="p-relay",
        endpoint_id="ep-test",
        client_id=client_id,
        node_types=PROMPT_TYPES,
        output_node="4",
    )


def runpod(tmp_path, clients: Any, **options: Any) -> RunpodExecutor:
    config = OffloadConfig(tmp_path / "state", env={"RUNPOD_API_KEY": "k"})
    return RunpodExecutor(config, clients, **options)


async def relay_job(
    tmp_path,
    server,
    outcome: Outcome,
    client_id: str | None = "tab-new",
    *,
    registry: JobRegistry | None = None,
    wrap: Any = None,
    **options: Any,
):
    """Submit one job through a real Relay to the fake's simulated worker; its record.
    `wrap` may put a fault injector around the real client; `options` go to the executor
    (status polls every 10-50 ms, OFTEN_POLLS, unless they name a `planner`: what the polls
    answer is under test here, not their pace, which the planner's own tests above check)."""
    options = {"planner": OFTEN_POLLS, **options}
    async with (
        running_fake(api_key="k", simulate=outcome) as fake,
        aiohttp.ClientSession() as session,
    ):
        client = RunpodClient(session, "k", fake.base_url)
        client = wrap(client) if wrap else client
        relay = Relay(
            registry or JobRegistry(tmp_path / "jobs.sqlite3"),
            OutputSaver(tmp_path / "output"),
            server.send_sync,
            {"runpod": runpod(tmp_path, lambda: client, **options)},
            recipients=server_recipients(server),
        )
        record = job_record(client_id)
        await relay.submit(record, {"workflow": {}})
        done = await relay.wait(record.prompt_id)
        await relay.close()
        return done


async def test_previews_reach_the_client_in_the_layout_it_negotiated(tmp_path):
    flags = {
        "tab-new": {"supports_preview_metadata": True},
        "tab-old": {},
        "someone-else": {"supports_preview_metadata": True},
    }
    outcome = Outcome(worker_time=0.5, steps=8, preview=preview("2"))
    for client, flagged in (("tab-new", True), ("tab-old", False)):
        server = FakePromptServer(flags)
        record = await relay_job(tmp_path / client, server, outcome, client)
        assert record.status == "success"
        (frame,) = server.binary()  # repeated by the worker, relayed once, to this client only
        event, data, sid = frame
        assert sid == client
        if flagged:
            assert event == 4
            (image_format, picture, max_size), metadata = data
            assert (image_format, max_size, picture.size) == ("JPEG", None, (32, 16))
            assert metadata["prompt_id"] == "p-relay" and metadata["node_id"] == "2"
            assert metadata["display_node_id"] == "2" and metadata["image_type"] == "image/jpeg"
            json.dumps(metadata)  # ComfyUI serialises it
        else:
            assert event == 1 and data == struct.pack(">I", 1) + jpeg()
        # the preview comes while the job runs, between its start and its end
        order = [e for e, _, _ in server.sent]
        assert order.index("execution_start") < order.index(event)
        assert order.index(event) < order.index("execution_success")


async def test_a_prompt_without_client_previews_to_everyone_by_their_flags(tmp_path):
    server = FakePromptServer({"a": {"supports_preview_metadata": True}, "b": {}})
    outcome = Outcome(worker_time=0.4, steps=4, preview=preview("2"))
    await relay_job(tmp_path, server, outcome, client_id=None)
    assert sorted((e, s) for e, _, s in server.binary()) == [(1, "b"), (4, "a")]


async def test_bad_previews_never_reach_a_client_and_the_job_still_succeeds(tmp_path, caplog):
    server = FakePromptServer({"tab-new": {"supports_preview_metadata": True}, "tab-old": {}})
    bad = {"node": "2", "image_type": "image/jpeg", "data": "%%%not-base64%%%"}
    record = await relay_job(tmp_path, server, Outcome(worker_time=0.4, preview=bad))
    assert record.status == "success" and server.binary() == []
    assert "not base64" in caplog.text and "%%%" not in caplog.text
    assert server.json_events("progress")  # progress still flowed


async def test_outputs_are_shown_on_the_node_that_made_them(tmp_path):
    server = FakePromptServer({"tab-new": {}})
    record = await relay_job(tmp_path, server, Outcome(output_nodes=("4", "5")))
    assert record.status == "success"
    executed = {d["node"]: d["output"]["images"] for d in server.json_events("executed")}
    assert sorted(executed) == ["4", "5"]
    assert [i["filename"] for i in executed["4"]] == ["node4_00001_.png"]
    assert [i["filename"] for i in executed["5"]] == ["node5_00001_.png"]
    assert {n: [f.filename for f in files] for n, files in record.outputs.items()} == {
        "4": ["node4_00001_.png"],
        "5": ["node5_00001_.png"],
    }
    saved = tmp_path / "output" / "parallel-runs" / "p-relay" / "node5_00001_.png"
    assert saved.read_bytes() == png_bytes(5, 4, (10, 0, 0))


async def test_outputs_without_a_node_go_to_the_prompts_output_node(tmp_path):
    server = FakePromptServer({"tab-new": {}})
    record = await relay_job(tmp_path, server, Outcome())  # a stock worker-comfyui result
    (executed,) = server.json_events("executed")
    assert executed["node"] == "4" and list(record.outputs) == ["4"]


async def test_audio_and_3d_results_are_shown_under_comfyuis_own_output_keys(tmp_path):
    """A worker returns every saved file in one `images` list; the node shows each as the
    ComfyUI node that makes that kind of file would (SaveAudio: audio, SaveGLB: 3d)."""
    files = {"song_00001_.flac": b"fLaC" + bytes(40), "mesh_00001_.glb": b"glTF" + bytes(40)}
    files["still_00001_.png"] = png_bytes(4, 4, (0, 0, 0))
    entries = [
        {"filename": name, "type": "base64", "data": base64.b64encode(data).decode(), "node": "4"}
        for name, data in files.items()
    ]
    server = FakePromptServer({"tab-new": {}})
    outcome = Outcome(result={"output": {"images": entries}})
    record = await relay_job(tmp_path, server, outcome)
    assert record.status == "success", record.error
    (executed,) = server.json_events("executed")
    names = {key: [f["filename"] for f in value] for key, value in executed["output"].items()}
    assert names == {
        "audio": ["song_00001_.flac"],
        "3d": ["mesh_00001_.glb"],
        "images": ["still_00001_.png"],
    }
    assert record.summary()["outputs"] == {"4": executed["output"]}


# --------------------------------------------------------------------------- endings


class SlowDiskRegistry(JobRegistry):
    """Writes take a while, as an fsync on a busy disk does."""

    def _commit(self, batch: dict, durable: bool) -> None:
        time.sleep(0.05)
        super()._commit(batch, durable)


class DiskAtEndings(FakePromptServer):
    """Reads the registry database when a final event goes out: what a kill right then
    leaves."""

    def __init__(self, path: Path) -> None:
        super().__init__({"tab-new": {}})
        self.path = path
        self.on_disk: dict[str, dict[str, Any]] = {}

    def send_sync(self, event: Any, data: Any, sid: str | None = None) -> None:
        if event in FINAL:
            (job,) = stored_records(self.path).values()
            self.on_disk[event] = job
        super().send_sync(event, data, sid)


FINAL = ("execution_success", "execution_error", "execution_interrupted")


async def test_a_jobs_end_and_outputs_are_on_disk_before_its_final_event(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    server = DiskAtEndings(path)
    record = await relay_job(
        tmp_path, server, Outcome(worker_time=0.3), registry=SlowDiskRegistry(path)
    )
    assert record.status == "success"
    job = server.on_disk["execution_success"]
    assert job["status"] == "success" and job["finished_at"]
    saved = {node: [f.model_dump() for f in files] for node, files in record.outputs.items()}
    assert job["outputs"] == saved and list(saved) == ["4"]


def completed_status(name: str = "out.png") -> JobStatus:
    image = {"filename": name, "type": "base64", "data": base64.b64encode(png_bytes()).decode()}
    return JobStatus(id="job-1", status="COMPLETED", output={"images": [image]})


def endings_for(tmp_path, server: FakePromptServer) -> tuple[JobEndings, JobRegistry]:
    registry = JobRegistry(tmp_path / "jobs.sqlite3")

    def emit(record: JobRecord, events: list) -> None:
        for event, data in events:
            server.send_sync(event, data, record.client_id)

    def announce(record: JobRecord) -> None:
        server.send_sync("parallel.job", {"status": record.status}, record.client_id)

    return JobEndings(registry, OutputSaver(tmp_path / "output"), emit, announce), registry


def saved_files(tmp_path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "output").rglob("*") if p.is_file())


async def test_a_finished_job_completed_again_saves_and_sends_nothing(tmp_path):
    server = FakePromptServer({"tab-new": {}})
    endings, registry = endings_for(tmp_path, server)
    registry.add(job_record().model_copy(update={"job_id": "job-1", "status": "running"}))
    events = PromptEvents("p-relay", PROMPT_TYPES)

    first = await endings.completed(job_record(), events, result_update(completed_status()))
    assert first.status == "success" and saved_files(tmp_path) == ["out.png"]
    sent = len(server.sent)
    again = await endings.completed(first, events, result_update(completed_status()))
    assert again == registry.get("p-relay") and again.outputs == first.outputs
    assert saved_files(tmp_path) == ["out.png"]  # no out_1.png
    assert len(server.sent) == sent  # no second execution_success
    for late in (
        endings.fail(first, "expired", "gone", events),
        endings.interrupted(first, events, "cancelled"),
    ):
        assert (await late).status == "success"
    assert len(server.sent) == sent
    await registry.saved()


async def test_outputs_saved_before_a_restart_are_not_saved_again(tmp_path):
    # a record written with its outputs while its end was lost: the files exist already
    server = FakePromptServer({"tab-new": {}})
    endings, registry = endings_for(tmp_path, server)
    kept = {"4": [SavedFile(filename="out.png", subfolder="parallel-runs/p-relay")]}
    registry.add(job_record().model_copy(update={"status": "running", "outputs": kept}))

    record = await endings.completed(
        job_record(), PromptEvents("p-relay", PROMPT_TYPES), result_update(completed_status())
    )
    assert record.status == "success" and record.outputs == kept
    assert saved_files(tmp_path) == []
    (executed,) = server.json_events("executed")
    assert executed["output"]["images"] == [f.model_dump() for f in kept["4"]]
    assert [e for e, _, _ in server.sent][-2:] == ["execution_success", "executing"]
    await registry.saved()


# --------------------------------------------------------------------------- following


class FlakyStatus:
    """A RunpodClient whose first `failures` status calls raise something unforeseen."""

    def __init__(self, client: RunpodClient, failures: int, error: Exception) -> None:
        self._client, self.failures, self.error = client, failures, error
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def status(self, endpoint_id: str, job_id: str, **options: Any) -> JobStatus:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return await self._client.status(endpoint_id, job_id, **options)


FAST_RETRIES = {"retry_delays": (0.01, 0.05)}


async def test_unexpected_status_failures_are_retried_and_never_log_their_text(tmp_path, caplog):
    server = FakePromptServer({"tab-new": {}})
    flaky: list[FlakyStatus] = []

    def wrap(client: RunpodClient) -> FlakyStatus:
        flaky.append(FlakyStatus(client, 3, RuntimeError("Authorization: Bearer k-secret")))
        return flaky[0]

    with caplog.at_level(logging.WARNING):
        record = await relay_job(
            tmp_path, server, Outcome(worker_time=0.5), wrap=wrap, **FAST_RETRIES
        )
    assert record.status == "success", record.error
    assert flaky[0].calls > 3 and server.json_events("execution_success")
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 3 and "RuntimeError" in retries[0]
    assert "k-secret" not in caplog.text


async def test_a_status_poll_that_keeps_failing_ends_the_prompt_after_a_bounded_number(tmp_path):
    server = FakePromptServer({"tab-new": {}})
    flaky: list[FlakyStatus] = []

    def wrap(client: RunpodClient) -> FlakyStatus:
        flaky.append(FlakyStatus(client, 10**6, TypeError("unforeseen")))
        return flaky[0]

    outcome = Outcome(worker_time=30)
    options = {**FAST_RETRIES, "max_unexpected_failures": 4}
    record = await relay_job(tmp_path, server, outcome, wrap=wrap, **options)
    assert flaky[0].calls == 4
    assert record.status == "error" and record.error.type == "relay_error"
    message = record.error.message
    assert "4 failed status checks in a row" in message and "TypeError" in message
    assert "may still run" in message and "cancel it" in message
    (error,) = server.json_events("execution_error")
    assert error["exception_message"] == message


async def test_two_cancels_at_once_interrupt_the_prompt_once(tmp_path):
    server = FakePromptServer({"tab-new": {}})
    async with (
        running_fake(api_key="k", simulate=Outcome(worker_time=10, steps=40)) as fake,
        aiohttp.ClientSession() as session,
    ):
        relay = Relay(
            JobRegistry(tmp_path / "jobs.sqlite3"),
            OutputSaver(tmp_path / "output"),
            server.send_sync,
            {"runpod": runpod(tmp_path, lambda: RunpodClient(session, "k", fake.base_url))},
            recipients=server_recipients(server),
        )
        record = await relay.submit(job_record(), {"workflow": {}})
        for _ in range(200):
            if server.json_events("progress"):
                break
            await asyncio.sleep(0.05)
        first, second = await asyncio.gather(
            relay.cancel(record.prompt_id), relay.cancel(record.prompt_id)
        )
        await relay.close()
        assert fake.job(record.job_id).status == "CANCELLED"
    assert first.status == second.status == "interrupted"
    assert len(server.json_events("execution_interrupted")) == 1
    assert [e for e, _, _ in server.sent][-2:] == ["execution_interrupted", "executing"]
    assert [d["status"] for d in server.json_events("parallel.job")].count("interrupted") == 1
