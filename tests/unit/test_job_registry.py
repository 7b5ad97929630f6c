"""The persisted job registry (SQLite, WAL): survives a reload and a crash once `saved()`
returns, commits durable changes and job endings with a full sync, imports the JSON registry of
earlier versions once, sets a damaged JSON file or database aside, prunes old finished jobs,
writes off the event loop in shared transactions, keeps its files private, and reports
JobSummary-shaped dicts."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
from registry_db import database_files, stored_records

from parallel_runs_node.server_routes.executors.records import JobError, JobRecord
from parallel_runs_node.server_routes.executors.registry import JobRegistry, RegistryWriteError
from parallel_runs_node.server_routes.jobs.routes import JobSummary

DB = "jobs.sqlite3"


def record(prompt_id: str, **fields) -> JobRecord:
    return JobRecord(prompt_id=prompt_id, executor="runpod:ep-1", client_id="tab", **fields)


class TracedRegistry(JobRegistry):
    """Sees every statement the registry runs and in which thread; `commit_delay` makes each
    commit slow, as a sync on a busy disk is."""

    def __init__(self, *args, commit_delay: float = 0.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commit_delay = commit_delay
        self.statements: list[tuple[int, str]] = []

    def _connect(self) -> sqlite3.Connection:
        connection = super()._connect()
        connection.set_trace_callback(self._trace)
        return connection

    def _trace(self, sql: str) -> None:
        self.statements.append((threading.get_ident(), sql))
        if sql == "COMMIT" and self.commit_delay:
            time.sleep(self.commit_delay)

    def commits(self) -> list[str]:
        """The sync level of each transaction committed since the last `clear()`."""
        levels: list[str] = []
        level = "?"
        for _, sql in self.statements:
            if sql.startswith("PRAGMA synchronous"):
                level = sql.rpartition("=")[2].strip()
            elif sql == "COMMIT":
                levels.append(level)
        return levels

    def clear(self) -> None:
        self.statements.clear()


def crash_copy(path: Path, to: Path) -> Path:
    """What a kill leaves on disk right now: the database file and its write-ahead log, as
    written so far (the registry's connection stays open, nothing is checkpointed)."""
    to.mkdir()
    for name in (path.name, path.name + "-wal"):
        if (path.parent / name).exists():
            shutil.copyfile(path.parent / name, to / name)
    return to / path.name


def write_legacy(path: Path, jobs: list[dict]) -> None:
    path.write_text(json.dumps({"version": 1, "jobs": jobs}))


# --------------------------------------------------------------------------- persistence


def test_records_persist_and_reload_across_instances(tmp_path):
    path = tmp_path / "state" / DB
    registry = JobRegistry(path)
    registry.add(record("a", job_id="j-a", node_types={"1": "SaveImage"}, created_at=1.0))
    registry.add(record("b", job_id="j-b", created_at=2.0))
    registry.add(record("c", created_at=3.0))
    registry.update("b", status="running", remote_status="IN_PROGRESS")
    registry.update(
        "a",
        status="error",
        error=JobError(type="expired", message="gone"),
        outputs={"1": [{"filename": "x.png", "subfolder": "parallel-runs/a"}]},
    )
    registry.remove("c")

    again = JobRegistry(path)
    assert [r.prompt_id for r in again.load()] == ["b"]
    assert [r.prompt_id for r in again.all()] == ["b", "a"]
    assert again.get("b").remote_status == "IN_PROGRESS"
    assert again.get("a").error.message == "gone"
    assert again.get("a").outputs["1"][0].type == "output"
    assert again.get("a").node_types == {"1": "SaveImage"}
    assert again.get("c") is None
    assert set(stored_records(path)) == {"a", "b"}


def test_duplicate_ids_and_bad_updates_are_refused(tmp_path):
    registry = JobRegistry(tmp_path / DB)
    registry.add(record("a"))
    with pytest.raises(KeyError):
        registry.add(record("a"))
    with pytest.raises(ValueError):
        registry.update("a", status="exploded")
    assert registry.get("a").status == "queued"
    assert stored_records(tmp_path / DB)["a"]["status"] == "queued"


async def test_what_saved_waited_for_survives_a_crash(tmp_path):
    """`await saved()` is the promise the routes rely on before RunPod is called: the record
    is in the database or its log once it returns, whatever happens to the process next."""
    path = tmp_path / "state" / DB
    registry = JobRegistry(path, save_delay=30)  # progress would wait long
    registry.add(record("a"))
    await registry.saved()
    first = JobRegistry(crash_copy(path, tmp_path / "crash1"))
    assert [r.prompt_id for r in first.load()] == ["a"]

    registry.update("a", status="running", remote_status="IN_QUEUE")  # progress: deferred
    second = JobRegistry(crash_copy(path, tmp_path / "crash2"))
    second.load()
    assert second.get("a").status == "queued"  # not written yet: changes are batched

    registry.update("a", durable=True, job_id="j-1")
    await registry.saved()
    third = JobRegistry(crash_copy(path, tmp_path / "crash3"))
    (resumed,) = third.load()
    assert resumed.job_id == "j-1" and resumed.remote_status == "IN_QUEUE"


async def test_saved_also_writes_deferred_progress(tmp_path):
    path = tmp_path / DB
    registry = JobRegistry(path, save_delay=30)
    registry.add(record("a"))
    registry.update("a", status="running", remote_status="IN_PROGRESS")
    await registry.saved()
    assert stored_records(path)["a"]["remote_status"] == "IN_PROGRESS"


async def test_durable_changes_and_job_endings_are_committed_with_a_full_sync(tmp_path):
    """A restart must find the job id and a job's end even after a power cut: those commits
    sync the log (synchronous=FULL); ordinary progress does not (NORMAL), and is batched."""
    path = tmp_path / DB
    registry = TracedRegistry(path, save_delay=0.02)
    registry.add(record("a"))
    await registry.saved()
    assert registry.commits() == ["FULL"]  # a new record: before RunPod is called

    registry.clear()
    for remote in ("IN_QUEUE", "IN_PROGRESS"):
        registry.update("a", status="running", remote_status=remote)
    await asyncio.sleep(0.1)
    assert registry.commits() == ["NORMAL"]  # two changes, one transaction
    assert stored_records(path)["a"]["remote_status"] == "IN_PROGRESS"

    registry.clear()
    registry.update("a", durable=True, job_id="j-1")
    await registry.saved()
    assert registry.commits() == ["FULL"]
    assert stored_records(path)["a"]["job_id"] == "j-1"

    registry.clear()
    registry.update("a", status="success", remote_status="COMPLETED")  # the job ended
    await registry.saved()
    assert registry.commits() == ["FULL"]
    assert stored_records(path)["a"]["status"] == "success"

    registry.clear()
    registry.update("a", remote_status="COMPLETED")  # still finished: not an end
    await registry.saved()
    assert registry.commits() == ["NORMAL"]


def test_flush_needs_no_event_loop_and_is_idempotent(tmp_path):
    path = tmp_path / DB
    registry = TracedRegistry(path)

    async def change() -> None:
        registry.add(record("a"))
        await registry.saved()
        registry.update("a", status="running")  # deferred; the loop ends before it is due

    asyncio.run(change())
    assert stored_records(path)["a"]["status"] == "queued"
    registry.clear()
    registry.flush()  # as atexit calls it: no loop
    assert stored_records(path)["a"]["status"] == "running"
    assert registry.commits() == ["FULL"]
    registry.clear()
    registry.flush()  # nothing new: no second write
    assert registry.statements == []


# --------------------------------------------------------------------------- migration


def test_a_json_registry_is_imported_once_then_renamed_aside(tmp_path, caplog):
    legacy = tmp_path / "offload_jobs.json"
    older_layout = {"prompt_id": "old", "endpoint_id": "ep-old", "job_id": "j-old"}
    older_layout |= {"status": "running", "created_at": 5.0, "updated_at": 6.0}
    finished = record("done", status="success", created_at=1.0).model_dump(mode="json")
    write_legacy(legacy, [older_layout, finished])
    caplog.set_level(logging.INFO)

    registry = JobRegistry(tmp_path / DB, migrate_from=legacy)
    (active,) = registry.load()
    assert active.prompt_id == "old" and active.executor == "runpod:ep-old"
    assert active.job_id == "j-old" and active.status == "running"
    assert registry.get("done").status == "success"
    assert not legacy.exists() and (tmp_path / "offload_jobs.json.migrated").exists()
    assert set(stored_records(tmp_path / DB)) == {"old", "done"}
    assert "2 job record(s) imported" in caplog.text

    registry.update("old", status="success", remote_status="COMPLETED")
    registry.remove("done")
    # The JSON file is back (say renaming it had failed): importing it again changes no row
    # the database already has.
    write_legacy(legacy, [older_layout])
    again = JobRegistry(tmp_path / DB, migrate_from=legacy)
    assert again.load() == []
    assert again.get("old").status == "success"  # not the JSON's older "running"
    assert again.get("done") is None


def test_a_damaged_json_registry_is_set_aside(tmp_path, caplog):
    legacy = tmp_path / "offload_jobs.json"
    legacy.write_text("{not json")
    registry = JobRegistry(tmp_path / DB, migrate_from=legacy)
    assert registry.load() == []
    assert not legacy.exists()
    assert len(list(tmp_path.glob("offload_jobs.json.damaged-*"))) == 1
    assert not (tmp_path / "offload_jobs.json.migrated").exists()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "offload_jobs.json" in warnings[0].getMessage()
    registry.add(record("a"))
    assert list(stored_records(tmp_path / DB)) == ["a"]


def damage_pages(path: Path) -> None:
    """Fill a real database with pages of records, then scribble over its middle pages."""
    registry = JobRegistry(path)
    for n in range(200):
        registry.add(record(f"p{n}", node_types={str(i): "SaveImage" * 4 for i in range(20)}))
    registry._disconnect()  # checkpoints the log into the file
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8192] = os.urandom(8192)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["not a database", "damaged pages"])
def test_a_damaged_database_is_set_aside_and_the_registry_starts_empty(tmp_path, caplog, damage):
    path = tmp_path / DB
    if damage == "not a database":
        path.write_bytes(b"this was never a database " * 200)
    else:
        damage_pages(path)
    registry = JobRegistry(path)
    assert registry.load() == [] and registry.all() == []
    assert len(list(tmp_path.glob(f"{DB}.damaged-*"))) == 1
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "moved to" in warnings[0].getMessage()
    registry.add(record("a"))
    assert [r.prompt_id for r in JobRegistry(path).load()] == ["a"]


def test_an_unreadable_row_is_dropped_not_fatal(tmp_path, caplog):
    path = tmp_path / DB
    registry = JobRegistry(path)
    registry.add(record("good"))
    with sqlite3.connect(path) as other:
        other.execute(
            "INSERT INTO jobs VALUES ('bad', 1, 'queued', 0, 0, ?)", ('{"prompt_id": 5}',)
        )
    again = JobRegistry(path)
    assert [r.prompt_id for r in again.load()] == ["good"]
    assert "1 unreadable job record(s) dropped" in caplog.text
    assert list(stored_records(path)) == ["good"]


# --------------------------------------------------------------------------- pruning, shape


def test_old_finished_jobs_are_pruned_but_active_ones_kept(tmp_path):
    path = tmp_path / DB
    registry = JobRegistry(path, keep_finished=2)
    for n in range(5):
        registry.add(record(f"done{n}", status="success", created_at=n, updated_at=n))
    registry.add(record("live", status="running"))
    assert sorted(stored_records(path)) == ["done3", "done4", "live"]
    assert sorted(r.prompt_id for r in registry.all()) == ["done3", "done4", "live"]

    registry.update("live", status="success")  # the newest finished now
    assert sorted(stored_records(path)) == ["done4", "live"]

    fewer = JobRegistry(path, keep_finished=1)  # a lower limit applies on the next start
    fewer.load()
    assert sorted(stored_records(path)) == ["live"]


def test_summaries_have_the_job_summary_shape(tmp_path):
    registry = JobRegistry(tmp_path / DB)
    registry.add(record("old", status="success", created_at=10.0, finished_at=12.5))
    registry.add(record("new", status="running", created_at=20.0, started_at=21.0))
    summaries = [JobSummary.model_validate(s) for s in registry.summaries()]
    assert [s.prompt_id for s in summaries] == ["new", "old"]  # active first
    assert summaries[0].executor == "runpod:ep-1"
    assert summaries[1].queued_at == 10_000 and summaries[1].finished_at == 12_500


def test_the_records_never_hold_unknown_fields(tmp_path):
    with pytest.raises(ValueError):
        JobRecord.model_validate({"prompt_id": "a", "endpoint_id": "e", "api_key": "x"})


# --------------------------------------------------------------------------- off the loop


async def test_writes_run_off_the_loop_and_a_burst_shares_transactions(tmp_path):
    """100 jobs ending at once (as in the offload benchmark) on a slow disk: the loop keeps
    running, and changes made while a transaction commits go out together in the next one."""
    loop_thread = threading.get_ident()
    registry = TracedRegistry(tmp_path / DB, commit_delay=0.15)
    for n in range(100):
        registry.add(record(f"p{n}"))
    await registry.saved()
    registry.clear()

    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    for n in range(100):
        registry.update(f"p{n}", durable=True, status="success", remote_status="COMPLETED")
    await registry.saved()
    ticking.cancel()

    assert 1 <= len(registry.commits()) <= 2, registry.commits()
    assert set(registry.commits()) == {"FULL"}
    assert registry.statements and loop_thread not in {t for t, _ in registry.statements}
    assert max(gaps) < 0.1, max(gaps)  # a commit on the loop would stall it 150 ms
    assert {job["status"] for job in stored_records(tmp_path / DB).values()} == {"success"}


async def test_the_newest_state_wins_with_writes_in_flight(tmp_path):
    registry = TracedRegistry(tmp_path / DB, save_delay=0.01, commit_delay=0.01)
    registry.add(record("a"))
    for n in range(20):
        registry.update("a", durable=n % 2 == 0, remote_status=f"S{n}")
        if n % 5 == 0:
            await asyncio.sleep(0.012)
    await registry.saved()
    assert stored_records(tmp_path / DB)["a"]["remote_status"] == "S19"
    assert len(registry.commits()) < 20


async def test_a_failed_write_is_reported_by_saved_and_retried(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    registry = JobRegistry(blocker / DB)
    registry.add(record("a"))
    with pytest.raises(OSError):
        await registry.saved()
    blocker.unlink()
    blocker.mkdir()
    await registry.saved()  # the change was kept and goes out now
    assert list(stored_records(blocker / DB)) == ["a"]


async def test_a_database_error_reaches_saved_as_an_os_error(tmp_path):
    path = tmp_path / DB
    registry = JobRegistry(path)
    registry.add(record("a"))
    await registry.saved()
    with sqlite3.connect(path) as other:
        other.execute("DROP TABLE jobs")
    registry.update("a", durable=True, job_id="j-1")
    with pytest.raises(RegistryWriteError) as failure:
        await registry.saved()
    assert isinstance(failure.value, OSError) and "no such table" in str(failure.value)
    await registry.saved()  # reopened: the table is created again, the change written
    assert stored_records(path)["a"]["job_id"] == "j-1"


# --------------------------------------------------------------------------- privacy


def test_the_database_and_its_log_are_private(tmp_path):
    path = tmp_path / "state" / DB
    previous = os.umask(0)  # even a permissive umask
    try:
        registry = JobRegistry(path)
        registry.add(record("a"))
        registry.update("a", durable=True, job_id="j-1")
    finally:
        os.umask(previous)
    files = database_files(path)
    assert {p.name for p in files} == {DB, DB + "-wal", DB + "-shm"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_files_left_less_private_are_made_private(tmp_path):
    path = tmp_path / DB
    JobRegistry(path).add(record("a"))
    os.chmod(path, 0o644)
    JobRegistry(path).load()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
