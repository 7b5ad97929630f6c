"""File names and paths from someone else (a remote result, a worker's input, a server's
answer): the one place that makes them plain, keeps them inside their folder and unique.

- `plain_name`: any name reduced to a bare, safe file name (never fails: a fallback).
- `checked_name`: the same, but refuses what tries to leave a folder or has an unknown type.
- `inside`: a path under a folder, or ValueError when it would leave it (links resolved).
- `unique_names` / `unique_name`: `a.png`, `a_1.png`, ... in a fixed order.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path

MAX_NAME = 120
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Names Windows reserves for devices, whatever the extension ("nul.png" opens the device).
WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{port}{n}" for port in ("com", "lpt") for n in range(10)]
)


class UnsafeFileName(ValueError):
    """A file name that tries to leave its folder or is unusable."""


def _shorten(stem: str, suffix: str) -> str:
    return stem[: MAX_NAME - len(suffix)].rstrip(" .") + suffix


def _not_a_device(stem: str) -> str:
    return "_" + stem if stem.split(".", 1)[0].strip().lower() in WINDOWS_DEVICES else stem


def plain_name(name: object, fallback: str = "output.png") -> str:
    """The last part of `name`, with only letters, digits and `._- `, no leading dot, no
    Windows device name, at most MAX_NAME characters; `fallback` when nothing is left."""
    text = unicodedata.normalize("NFKC", str(name)).replace("\\", "/").rsplit("/", 1)[-1]
    text = _UNSAFE_CHARS.sub("_", text.replace("\x00", "")).strip(" .")
    if not text or set(text) <= {"_", ".", " "}:  # nothing but filler left
        return fallback
    stem, dot, suffix = text.rpartition(".")
    if not dot or not stem:
        return _shorten(_not_a_device(text), "")
    return _shorten(_not_a_device(stem), "." + suffix[:16])


def checked_name(name: object, allowed_suffixes: AbstractSet[str]) -> str:
    """A plain name for `name`, or UnsafeFileName for anything that tries to leave the folder
    (`..`, absolute paths, drive letters, NUL bytes) or has a type not in `allowed_suffixes`."""
    if not isinstance(name, str) or not name.strip():
        raise UnsafeFileName("empty or missing file name")
    if "\x00" in name:
        raise UnsafeFileName(f"file name contains a NUL byte: {name!r}")
    if _DRIVE.match(name) or name.startswith(("/", "\\")):
        raise UnsafeFileName(f"absolute file name refused: {name!r}")
    parts = re.split(r"[\\/]+", name)
    if any(part in ("..", ".") for part in parts):
        raise UnsafeFileName(f"file name with a parent/current-directory part refused: {name!r}")
    flat = "_".join(part for part in parts if part)
    cleaned = _UNSAFE_CHARS.sub("_", flat).strip(" .")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot or not stem:
        raise UnsafeFileName(f"file name without a known extension: {name!r}")
    suffix = "." + suffix.lower()
    if suffix not in allowed_suffixes:
        raise UnsafeFileName(f"file type {suffix} is not saved: {name!r}")
    return _not_a_device(stem)[: MAX_NAME - len(suffix)] + suffix


def inside(base: Path, name: str) -> Path:
    """The real path of `name` under `base` (links resolved), or UnsafeFileName when it is
    not a relative name or would leave `base`."""
    if not name or "\x00" in name or os.path.isabs(name) or _DRIVE.match(name):
        raise UnsafeFileName(f"file name {name!r} is not a relative name")
    if any(part == ".." for part in re.split(r"[\\/]+", name)):
        raise UnsafeFileName(f"file name {name!r} leaves the folder")
    root = os.path.realpath(base)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise UnsafeFileName(f"file name {name!r} leaves the folder")
    return Path(path)


def unique_name(name: str, taken: set[str], separator: str = "_") -> str:
    """`name`, or `stem_1.ext`, `stem_2.ext`... the first not in `taken` (compared without
    case, as Windows and macOS do); it is added to `taken`."""
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 0
    while candidate.lower() in taken:
        n += 1
        candidate = f"{stem}{separator}{n}{suffix}"
    taken.add(candidate.lower())
    return candidate


def unique_names(names: Iterable[str]) -> list[str]:
    """The same names made unique in order: the same list always gives the same names, so a
    result saved again lands on the same files."""
    taken: set[str] = set()
    return [unique_name(name, taken) for name in names]
