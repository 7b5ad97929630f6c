"""The offloaded jobs this ComfyUI knows about, persisted so a restart resumes them.

One SQLite database (stdlib `sqlite3`, WAL journal) in the package's folder of ComfyUI's user
directory, one row per job: the record's JSON keyed by our prompt id, plus the columns that
order and prune (active, status, created_at, updated_at). It maps our prompt id to the remote
job id and keeps what the jobs list and a restarted relay need. It never holds the API key.

Why SQLite and not the JSON file it replaces: that file was serialised and rewritten whole for
every batch of changes, so each write cost grew with the history kept (up to 200 finished
jobs). A transaction writes only the rows that changed, is all-or-nothing without temp files
and renames, and in WAL mode a commit is one append to the log (with one fsync when durable).

Memory is the read source; the database is write-through persistence. Changes are made on the
event loop and committed by the registry's own writer thread, so the loop never waits for the
disk; everything changed while a write runs goes out together in the next transaction.
- Durable, committed at once with `synchronous=FULL` (the log is fsynced before `saved()`
  returns): a new record (on disk before RunPod is called), changes made with `durable=True`
  (the remote job id), every change that ends a job, and `flush()` (shutdown, atexit).
- Progress (statuses, warnings) is committed within `save_delay` with `synchronous=NORMAL`:
  it survives ComfyUI being killed, and a power cut loses at most those last changes.
A JSON registry from earlier versions is imported on first start and renamed aside; a damaged
JSON file or database is set aside with a log line and the registry starts without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .records import JobRecord

log = logging.getLogger(__name__)
KEEP_FINISHED = 200
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    prompt_id TEXT PRIMARY KEY,
    active INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_age ON jobs (active, updated_at);
"""
COLUMNS = "(prompt_id, active, status, created_at, updated_at, record) VALUES (?, ?, ?, ?, ?, ?)"
UPSERT = f"INSERT OR REPLACE INTO jobs {COLUMNS}"
IMPORT = f"INSERT OR IGNORE INTO jobs {COLUMNS}"  # a row already in the database is newer
DAMAGED_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB
SIDE_FILES = ("-wal", "-shm")

Row = tuple[str, int, str, float, float, str]


class LegacyJobFile(BaseModel):
    """The JSON registry of earlier versions (`offload_jobs.json`)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal[1] = 1
    jobs: list[JobRecord] = Field(default_factory=list)


class RegistryWriteError(OSError):
    """The database refused a write: an OSError, like the disk errors callers already expect."""


class _Damaged(Exception):
    """The database file is not a usable SQLite database."""


def _is_damage(exc: BaseException) -> bool:
    if isinstance(exc, _Damaged):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in DAMAGED_CODES
    text = str(exc)
    return "not a database" in text or "malformed" in text


def _row(record: JobRecord) -> Row:
    return (
        record.prompt_id,
        int(record.active),
        record.status,
        record.created_at,
        record.updated_at,
        record.model_dump_json(),
    )


class JobRegistry:
    """In-memory records with write-through persistence. Records change on one event loop;
    the database is written by one thread at a time, each transaction with every change not
    yet on disk, so a newer state is never overwritten by an older one."""

    def __init__(
        self,
        path: Path,
        keep_finished: int = KEEP_FINISHED,
        save_delay: float = 0.2,
        migrate_from: Path | None = None,
    ) -> None:
        self.path = Path(path)
        self.keep_finished = keep_finished
        self.save_delay = save_delay
        self.migrate_from = None if migrate_from is None else Path(migrate_from)
        self._jobs: dict[str, JobRecord] = {}
        # Changes not on disk yet: prompt id -> its row (None: delete it), whether one of them
        # must be durable, and the version (bumped by every change) they bring the disk to.
        # Guarded by _state_lock: the loop adds to them, a writer takes them all at once.
        self._state_lock = threading.Lock()
        self._dirty: dict[str, Row | None] = {}
        self._dirty_durable = False
        self._version = 0
        self._written = 0  # every change up to this version is committed
        self._db_lock = threading.Lock()  # the connection, one transaction at a time
        self._db: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: asyncio.TimerHandle | None = None
        # One write in the thread at a time; a save meanwhile queues the next one. Each future
        # ends with that write's error (or None) as its result.
        self._writing: asyncio.Future[BaseException | None] | None = None
        self._queued: asyncio.Future[BaseException | None] | None = None

    # ------------------------------------------------------------------ reading

    def load(self) -> list[JobRecord]:
        """Open the database (importing a JSON registry of earlier versions first; a damaged
        file is set aside, not fatal) and read it; returns the active records."""
        rows: list[tuple[str, str]] = []
        with self._db_lock:
            for attempt in (1, 2):
                try:
                    connection = self._connection()
                    self._import_legacy(connection)
                    rows = connection.execute("SELECT prompt_id, record FROM jobs").fetchall()
                    break
                except (sqlite3.Error, _Damaged, OSError) as exc:
                    if attempt == 1 and _is_damage(exc):
                        self._set_aside(exc)
                        continue
                    self._disconnect()
                    log.error(
                        "[parallel-runs] could not read the job registry %s: %s", self.path, exc
                    )
                    break
        unreadable: list[str] = []
        for prompt_id, text in rows:
            if prompt_id in self._jobs:
                continue  # changed here before load(): newer than the row
            try:
                self._jobs[prompt_id] = JobRecord.model_validate_json(text)
            except ValueError:
                unreadable.append(prompt_id)
                self._mark(prompt_id, None)
        if unreadable:
            log.warning(
                "[parallel-runs] %d unreadable job record(s) dropped from %s: %s",
                len(unreadable),
                self.path,
                ", ".join(unreadable[:5]),
            )
        self._prune()
        if self._dirty:
            with contextlib.suppress(OSError):  # logged; retried with the next write
                self._write_pending()
        return self.active()

    def _import_legacy(self, connection: sqlite3.Connection) -> None:
        """Import `migrate_from` if it is there; failing to is logged, not fatal (the import
        is tried again next start)."""
        if self.migrate_from is None:
            return
        try:
            self._migrate(connection, self.migrate_from)
        except (OSError, sqlite3.Error) as exc:
            if _is_damage(exc):
                raise
            log.error("[parallel-runs] could not import %s: %s", self.migrate_from, exc)

    def _migrate(self, connection: sqlite3.Connection, legacy: Path) -> None:
        """Import the records of a JSON registry, then rename it aside so it is imported once
        (importing again would change nothing: rows already in the database win)."""
        try:
            raw = legacy.read_text("utf-8")
        except FileNotFoundError:
            return
        try:
            stored = LegacyJobFile.model_validate_json(raw)
        except ValueError as exc:  # not JSON, not UTF-8, or not the layout
            aside = legacy.with_name(f"{legacy.name}.damaged-{int(time.time())}")
            legacy.replace(aside)
            log.warning("[parallel-runs] old job registry unreadable (%s); moved to %s", exc, aside)
            return
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(IMPORT, [_row(job) for job in stored.jobs])
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise
        done = legacy.with_name(f"{legacy.name}.migrated")
        legacy.replace(done)
        log.info(
            "[parallel-runs] %d job record(s) imported from %s; the file is now %s",
            len(stored.jobs),
            legacy,
            done.name,
        )

    # ------------------------------------------------------------------ the database

    def _connect(self) -> sqlite3.Connection:
        """A connection to the database file, created readable by the owner only (SQLite
        gives its -wal and -shm files the database file's mode) in a private folder."""
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o700)
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        return sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)

    def _connection(self) -> sqlite3.Connection:
        """The open connection, or a new one on a checked database (under _db_lock)."""
        if self._db is not None:
            return self._db
        connection = self._connect()
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            (check,) = connection.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise _Damaged(check)
            connection.executescript(SCHEMA)
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version == 0:
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            connection.close()
            raise
        for name in ("", *SIDE_FILES):  # files left by an older version may be less private
            with contextlib.suppress(OSError):
                os.chmod(f"{self.path}{name}", 0o600)
        self._db = connection
        return connection

    def _disconnect(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _set_aside(self, exc: BaseException) -> None:
        """Move a damaged database (and its -wal/-shm) aside; the next open starts empty."""
        self._disconnect()
        aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
        for name in ("", *SIDE_FILES):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{name}").replace(f"{aside}{name}")
        log.warning("[parallel-runs] job registry unreadable (%s); moved to %s", exc, aside)

    def _write_pending(self, durable: bool = False) -> None:
        """Commit every change not on disk yet in one transaction, synced (FULL) when one of
        them is durable or `durable`. A failed write leaves the changes pending."""
        with self._db_lock:
            with self._state_lock:
                batch, self._dirty = self._dirty, {}
                durable = durable or self._dirty_durable
                self._dirty_durable = False
                version = self._version
            if batch:
                try:
                    self._commit(batch, durable)
                except BaseException as exc:
                    self._disconnect()  # opened afresh next time (which may be what cures it)
                    with self._state_lock:
                        for prompt_id, row in batch.items():
                            self._dirty.setdefault(prompt_id, row)  # unless changed since
                        self._dirty_durable = self._dirty_durable or durable
                    if isinstance(exc, sqlite3.Error):
                        raise RegistryWriteError(f"{self.path}: {exc}") from exc
                    raise
            self._written = max(self._written, version)

    def _commit(self, batch: dict[str, Row | None], durable: bool) -> None:
        connection = self._connection()
        connection.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        connection.execute("BEGIN IMMEDIATE")
        try:
            upserts = [row for row in batch.values() if row is not None]
            deletes = [(prompt_id,) for prompt_id, row in batch.items() if row is None]
            if upserts:
                connection.executemany(UPSERT, upserts)
            if deletes:
                connection.executemany("DELETE FROM jobs WHERE prompt_id = ?", deletes)
            connection.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------------ saving

    def save(self) -> None:
        """Write the pending changes now (and cancel a deferred write): in the registry's
        thread when an event loop runs (`await saved()` to wait), else right here."""
        self._cancel_pending()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write_pending()
            return
        self._forget_ended_loop(loop)
        if self._queued is None:
            self._queued = loop.create_future()
        if self._writing is None:
            self._start_queued(loop)

    def _forget_ended_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Drop the write signals of an earlier event loop that ended during a write."""
        if self._writing is not None and self._writing.get_loop() is not loop:
            self._writing = self._queued = None

    def _start_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the queued write: it commits every change made until it runs."""
        signal = self._queued
        assert signal is not None
        self._queued = None
        self._writing = signal
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="parallel-runs-registry")
        write = loop.run_in_executor(self._executor, self._write_pending)

        def finished(future: asyncio.Future[None]) -> None:
            error = None if future.cancelled() else future.exception()
            if error is not None:
                log.error("[parallel-runs] could not write %s: %s", self.path, error)
            self._writing = None
            if self._queued is not None:
                self._start_queued(loop)
            signal.set_result(error)

        write.add_done_callback(finished)

    def save_soon(self) -> None:
        """Write within `save_delay` seconds, once for any number of changes until then."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.save()
            return
        if self._pending is None:
            self._pending = loop.call_later(self.save_delay, self.save)

    async def saved(self) -> None:
        """Until every change made so far is on disk (a deferred write is done now); raises
        the error of a write it waited for."""
        self._forget_ended_loop(asyncio.get_running_loop())
        target = self._version
        while self._written < target:
            if self._writing is None and self._queued is None:
                self.save()
            pending = self._writing or self._queued
            assert pending is not None
            await asyncio.wait({pending})  # a cancelled wait stops no write
            error = pending.result()
            if error is not None:
                raise error

    def flush(self) -> None:
        """Commit what is not on disk yet, synchronously and durably. For shutdown: needs no
        event loop (atexit), waits for a write in progress, and may be called again."""
        self._cancel_pending()
        self._write_pending(durable=True)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    # ------------------------------------------------------------------ changes

    def _mark(self, prompt_id: str, record: JobRecord | None, durable: bool = False) -> None:
        row = None if record is None else _row(record)
        with self._state_lock:
            self._dirty[prompt_id] = row
            self._dirty_durable = self._dirty_durable or durable
            self._version += 1

    def _prune(self) -> None:
        """Forget the oldest finished jobs (by last change) beyond `keep_finished`."""
        finished = [job for job in self._jobs.values() if not job.active]
        excess = len(finished) - self.keep_finished
        if excess <= 0:
            return
        finished.sort(key=lambda job: job.updated_at)
        for job in finished[:excess]:
            del self._jobs[job.prompt_id]
            self._mark(job.prompt_id, None)

    def add(self, record: JobRecord) -> JobRecord:
        """Register a job and write it durably now (`await saved()` before calling RunPod)."""
        if record.prompt_id in self._jobs:
            raise KeyError(f"prompt id {record.prompt_id} already registered")
        self._jobs[record.prompt_id] = record
        self._mark(record.prompt_id, record, durable=True)
        if not record.active:
            self._prune()
        self.save()
        return record

    def get(self, prompt_id: str) -> JobRecord | None:
        return self._jobs.get(prompt_id)

    def update(self, prompt_id: str, *, durable: bool = False, **changes: Any) -> JobRecord:
        """Apply `changes` (validated) and persist soon; `durable` (implied when the job ends):
        write now, synced (`await saved()` to wait for it)."""
        current = self._jobs[prompt_id]
        record = JobRecord.model_validate(
            {**current.model_dump(), **changes, "updated_at": time.time()}
        )
        self._jobs[prompt_id] = record
        ended = current.active and not record.active
        self._mark(prompt_id, record, durable=durable or ended)
        if ended:
            self._prune()
        if durable or ended:
            self.save()
        else:
            self.save_soon()
        return record

    def remove(self, prompt_id: str) -> None:
        if self._jobs.pop(prompt_id, None) is not None:
            self._mark(prompt_id, None)
            self.save()

    def all(self) -> list[JobRecord]:
        """Active first, then newest first."""
        return sorted(self._jobs.values(), key=lambda j: (not j.active, -j.created_at))

    def active(self) -> list[JobRecord]:
        return [job for job in self.all() if job.active]

    def active_count(self) -> int:
        """How many wait or run: read from any thread (ComfyUI's execution thread asks for its
        queue count), so over a copy taken in one step."""
        return sum(job.active for job in list(self._jobs.values()))

    def summaries(self) -> Iterable[dict[str, Any]]:
        """The jobs source for GET /parallel/jobs."""
        return [job.summary() for job in self.all()]
