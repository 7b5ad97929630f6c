"""The job registry's SQLite database as a test reads it from outside: the records its rows
hold, and the raw bytes of its files (the database and its write-ahead log)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SIDE_FILES = ("-wal", "-shm")


def stored_records(path: Path) -> dict[str, dict[str, Any]]:
    """prompt id -> the record its row holds (parsed), through a read-only connection."""
    path = Path(path)
    if not path.exists():
        return {}
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT prompt_id, record FROM jobs").fetchall()
    finally:
        connection.close()
    return {prompt_id: json.loads(text) for prompt_id, text in rows}


def stored_text(path: Path) -> str:
    """Every row's record text, one per line: what the database holds, however it is paged."""
    return "\n".join(json.dumps(record) for record in stored_records(path).values())


def database_files(path: Path) -> list[Path]:
    """The database file and the -wal/-shm files next to it that exist."""
    return [p for p in (Path(f"{path}{suffix}") for suffix in ("", *SIDE_FILES)) if p.exists()]


def raw_bytes(path: Path) -> bytes:
    """The bytes of the database and its -wal as they are on disk (read before any connection
    of ours could checkpoint them): freed pages and old log frames included."""
    return b"".join(p.read_bytes() for p in database_files(path) if not p.name.endswith("-shm"))
