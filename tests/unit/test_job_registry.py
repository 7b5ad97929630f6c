"""The persisted job registry: survives a reload, writes atomically and privately (off the
event loop, fsynced when durable), sets a damaged file aside, prunes old finished jobs, and
reports JobSummary-shaped dicts."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
import time

import pytest
from offload_harness import writer_threads

from parallel_runs_node.server_routes.executors import registry as job_registry
from parallel_runs_node.server_routes.executors.records import JobError, JobRecord
from parallel_runs_node.server_routes.executors.registry import JobRegistry
from parallel_runs_node.server_routes.jobs.routes import JobSummary


def record(prompt_id: str, **fields) -> JobRecord:
    return JobRecord(prompt_id=prompt_id, endpoint_id="ep-1", client_id="tab", **fields)


def test_records_survive_a_reload(tmp_path):
    path = tmp_path / "state" / "jobs.json"
    registry = JobRegistry(path)
    registry.add(record("a", job_id="j-a", node_types={"1": "SaveImage"}))
    registry.add(record("b", job_id="j-b"))
    registry.update("b", status="running", remote_status="IN_PROGRESS")
    registry.update(
        "a",
        status="error",
        error=JobError(type="expired", message="gone"),
        outputs={"1": [{"filename": "x.png", "subfolder": "parallel-runs/a"}]},
    )

    again = JobRegistry(path)
    active = again.load()
    assert [r.prompt_id for r in active] == ["b"]
    assert again.get("a").error.message == "gone"
    assert again.get("a").outputs["1"][0].type == "output"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["jobs.json"]  # no temp files left


def test_duplicate_ids_and_bad_updates_are_refused(tmp_path):
    registry = JobRegistry(tmp_path / "jobs.json")
    registry.add(record("a"))
    with pytest.raises(KeyError):
        registry.add(record("a"))
    with pytest.raises(ValueError):
        registry.update("a", status="exploded")
    assert registry.get("a").status == "queued"


def test_a_damaged_file_is_set_aside(tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text("{not json")
    registry = JobRegistry(path)
    assert registry.load() == []
    assert not path.exists()
    assert len(list(tmp_path.glob("jobs.damaged-*"))) == 1
    registry.add(record("a"))
    assert json.loads(path.read_text())["jobs"][0]["prompt_id"] == "a"


def test_old_finished_jobs_are_pruned_but_active_ones_kept(tmp_path):
    registry = JobRegistry(tmp_path / "jobs.json", keep_finished=2)
    for n in range(5):
        registry.add(record(f"done{n}", status="success", created_at=n, updated_at=n))
    registry.add(record("live", status="running"))
    stored = json.loads(registry.path.read_text())["jobs"]
    assert sorted(j["prompt_id"] for j in stored) == ["done3", "done4", "live"]


def test_summaries_have_the_job_summary_shape(tmp_path):
    registry = JobRegistry(tmp_path / "jobs.json")
    registry.add(record("old", status="success", created_at=10.0, finished_at=12.5))
    registry.add(record("new", status="running", created_at=20.0, started_at=21.0))
    summaries = [JobSummary.model_validate(s) for s in registry.summaries()]
    assert [s.prompt_id for s in summaries] == ["new", "old"]  # active first
    assert summaries[0].executor == "runpod:ep-1"
    assert summaries[1].queued_at == 10_000 and summaries[1].finished_at == 12_500


def test_the_file_never_holds_unknown_fields(tmp_path):
    with pytest.raises(ValueError):
        JobRecord.model_validate({"prompt_id": "a", "endpoint_id": "e", "api_key": "x"})


async def test_status_changes_are_written_in_batches_but_job_ids_at_once(tmp_path):
    path = tmp_path / "jobs.json"
    registry = JobRegistry(path, save_delay=0.05)
    registry.add(record("a"))
    registry.update("a", durable=True, job_id="j-1")
    await registry.saved()
    assert json.loads(path.read_text())["jobs"][0]["job_id"] == "j-1"
    for remote in ("IN_QUEUE", "IN_PROGRESS"):
        registry.update("a", status="running", remote_status=remote)
    await registry.saved()
    assert json.loads(path.read_text())["jobs"][0]["status"] == "queued"  # not yet
    await asyncio.sleep(0.2)
    await registry.saved()
    assert json.loads(path.read_text())["jobs"][0]["remote_status"] == "IN_PROGRESS"
    registry.update("a", started_at=5.0)
    registry.flush()  # shutdown
    assert json.loads(path.read_text())["jobs"][0]["started_at"] == 5.0


class FsyncLog:
    """Records what os.fsync was asked to sync: "file" or "dir"."""

    def __init__(self) -> None:
        self.synced: list[str] = []
        self._real = os.fsync

    def __call__(self, fd: int) -> None:
        self.synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        self._real(fd)


def test_durable_changes_and_job_ends_are_fsynced(tmp_path, monkeypatch):
    """A restart must find the job id and a job's end even after a power cut: file and folder
    are synced for those; ordinary progress is not (it costs tens of ms per write)."""
    fsync = FsyncLog()
    monkeypatch.setattr(os, "fsync", fsync)
    registry = JobRegistry(tmp_path / "jobs.json")
    registry.add(record("a"))
    registry.update("a", status="running", remote_status="IN_PROGRESS")
    assert fsync.synced == []
    registry.update("a", durable=True, job_id="j-1")
    assert fsync.synced == ["file", "dir"]
    fsync.synced.clear()
    registry.update("a", status="success", remote_status="COMPLETED")  # the job ended
    assert fsync.synced == ["file", "dir"]
    fsync.synced.clear()
    registry.update("a", remote_status="COMPLETED")  # still finished: not an end
    assert fsync.synced == []


async def test_writes_run_off_the_event_loop_in_order(tmp_path, monkeypatch):
    loop_thread = threading.get_ident()
    writers = writer_threads(monkeypatch, job_registry)
    registry = JobRegistry(tmp_path / "jobs.json", save_delay=0.01)
    registry.add(record("a"))
    for n in range(20):  # many writes in flight: the newest state must win
        registry.update("a", durable=n % 2 == 0, remote_status=f"S{n}")
    await registry.saved()
    await asyncio.sleep(0.05)
    await registry.saved()
    assert writers and loop_thread not in writers
    assert json.loads(registry.path.read_text())["jobs"][0]["remote_status"] == "S19"


async def test_a_failed_write_is_reported_by_saved(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    registry = JobRegistry(blocker / "jobs.json")
    registry.add(record("a"))
    with pytest.raises(OSError):
        await registry.saved()
    await registry.saved()  # reported once


def test_flush_needs_no_event_loop_and_is_idempotent(tmp_path, monkeypatch):
    registry = JobRegistry(tmp_path / "jobs.json")

    async def change() -> None:
        registry.add(record("a"))
        await registry.saved()
        registry.update("a", status="running")  # deferred; the loop ends before it is due

    asyncio.run(change())
    assert json.loads(registry.path.read_text())["jobs"][0]["status"] == "queued"
    fsync = FsyncLog()
    monkeypatch.setattr(os, "fsync", fsync)
    registry.flush()
    assert json.loads(registry.path.read_text())["jobs"][0]["status"] == "running"
    assert fsync.synced == ["file", "dir"]
    registry.flush()  # nothing new: no second write
    assert fsync.synced == ["file", "dir"]


async def test_a_burst_of_job_endings_shares_writes(tmp_path, monkeypatch):
    """100 jobs ending at once (as in the offload benchmark) must not cost 100 serialisations
    and fsyncs in a row: changes made while a write runs go out together in the next one."""
    writes: list[bool] = []
    real = job_registry.write_private

    def slow_write(path, text, durable=True):
        time.sleep(0.05)  # a slow disk
        writes.append(durable)
        real(path, text, durable)

    monkeypatch.setattr(job_registry, "write_private", slow_write)
    registry = JobRegistry(tmp_path / "jobs.json", save_delay=0.01)
    for n in range(100):
        registry.add(record(f"p{n}"))
    await registry.saved()
    writes.clear()
    for n in range(100):
        registry.update(f"p{n}", durable=True, status="success", remote_status="COMPLETED")
    await registry.saved()
    assert writes == [True, True]  # the first ending, then the 99 that came while it ran
    stored = json.loads(registry.path.read_text())["jobs"]
    assert {job["status"] for job in stored} == {"success"}
