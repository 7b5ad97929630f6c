"""The package's private files in ComfyUI's user folder: settings, the RunPod key, the named
servers and their auth headers, this ComfyUI's client id. Written whole or not at all,
readable by the owner only. (The job records are a database in the same folder: registry.py.)"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

STATE_NAME = "parallel_runs"


def write_private(path: Path, text: str, durable: bool = True) -> None:
    """Atomically replace `path` with `text`, readable by the owner only (0600).
    `durable` also waits for the disk (fsync of the file, then of its folder so the rename
    itself survives a power cut), which can take tens of milliseconds: call it off the loop."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_directory(path.parent)


def _fsync_directory(folder: Path) -> None:
    """Persist a rename in `folder` (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def state_directory(user_dir: Path) -> Path:
    """Where the package keeps its files: a "__" system-user folder, which ComfyUI's
    /userdata routes refuse to serve (same as `folder_paths.get_system_user_directory`)."""
    return Path(user_dir) / f"__{STATE_NAME}"
