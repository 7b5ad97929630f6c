"""Save a remote job's result files into ComfyUI's output folder, where /view serves them.

File names come from a machine we do not control: anything that could leave the folder (`..`,
absolute paths, drive letters, NUL bytes) is refused, the rest is reduced to a plain, safe
name. Every write is checked to land inside `output/<subfolder>/` and never replaces a file.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

MAX_NAME = 120
_SUFFIXES = "png jpg jpeg webp gif bmp tif tiff mp4 webm mov mkv avi wav mp3 flac ogg opus m4a"
ALLOWED_SUFFIXES = frozenset(f".{s}" for s in (_SUFFIXES + " json txt glb gltf obj").split(" "))
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafeFileName(ValueError):
    """A remote file name that tries to leave the output folder or is unusable."""


class OutputTooLarge(ValueError):
    """The result is bigger than this server accepts."""


def safe_filename(name: Any) -> str:
    """A plain file name for `name`, or UnsafeFileName for anything hostile."""
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
    if suffix not in ALLOWED_SUFFIXES:
        raise UnsafeFileName(f"file type {suffix} is not saved: {name!r}")
    return stem[: MAX_NAME - len(suffix)] + suffix


def safe_subfolder(subfolder: str) -> str:
    """Our own per-prompt subfolder, checked like a remote name (no separators but '/')."""
    parts = PurePosixPath(subfolder).parts
    if not parts or any(p in ("..", ".", "/") or not re.fullmatch(r"[\w.-]+", p) for p in parts):
        raise UnsafeFileName(f"bad subfolder {subfolder!r}")
    return "/".join(parts)


def decode_base64(data: Any, limit: int) -> bytes:
    """Decode a base64 payload (data-URL prefix allowed) without exceeding `limit` bytes."""
    if not isinstance(data, str):
        raise ValueError("image data is not a base64 string")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    if len(data) * 3 // 4 > limit + 3:
        raise OutputTooLarge(f"file of about {len(data) * 3 // 4} bytes exceeds {limit} bytes")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"image data is not valid base64: {exc}") from exc


@dataclass
class SaveReport:
    """What landed where, and what was refused (with the reason a user can act on)."""

    saved: list[dict[str, str]] = field(default_factory=list)  # {filename, subfolder, type}
    sources: list[int] = field(default_factory=list)  # index of each saved file's entry
    refused: list[str] = field(default_factory=list)
    total_bytes: int = 0


@dataclass(frozen=True)
class OutputSaver:
    """Writes decoded files under `root/<subfolder>`; `root` is ComfyUI's output directory."""

    root: Path
    max_file_bytes: int = 100 * 1024 * 1024
    max_total_bytes: int = 300 * 1024 * 1024

    def folder(self, subfolder: str) -> Path:
        root = Path(os.path.realpath(self.root))
        target = Path(os.path.realpath(root / safe_subfolder(subfolder)))
        if os.path.commonpath([root, target]) != str(root):
            raise UnsafeFileName(f"subfolder {subfolder!r} leaves the output folder")
        return target

    def write(self, subfolder: str, name: str, data: bytes) -> dict[str, str]:
        """Create a new file (never overwrite, never follow a link); returns its /view address."""
        folder = self.folder(subfolder)
        folder.mkdir(parents=True, exist_ok=True)
        folder = self.folder(subfolder)  # re-check after creation (a raced-in symlink)
        stem, suffix = os.path.splitext(name)
        for attempt in range(1000):
            candidate = name if attempt == 0 else f"{stem}_{attempt}{suffix}"
            path = folder / candidate
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            try:
                fd = os.open(path, flags, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            return {"filename": candidate, "subfolder": subfolder, "type": "output"}
        raise UnsafeFileName(f"too many files named {name!r}")

    def save_images(self, subfolder: str, images: Iterable[Mapping[str, Any]]) -> SaveReport:
        """Save worker-comfyui style `images` entries of type base64; others are refused."""
        report = SaveReport()
        for index, image in enumerate(images):
            label = image.get("filename") if isinstance(image, Mapping) else None
            try:
                if not isinstance(image, Mapping):
                    raise ValueError("entry is not an object")
                if image.get("type", "base64") != "base64":
                    raise ValueError(f"result type {image.get('type')!r} is not supported")
                name = safe_filename(image.get("filename"))
                room = min(self.max_file_bytes, self.max_total_bytes - report.total_bytes)
                data = decode_base64(image.get("data"), max(room, 0))
                if len(data) > room:
                    raise OutputTooLarge(f"{len(data)} bytes exceed the remaining {room}")
                report.saved.append(self.write(subfolder, name, data))
                report.sources.append(index)
                report.total_bytes += len(data)
            except OutputTooLarge as exc:
                report.refused.append(f"result file #{index} {label!r}: too large ({exc})")
            except ValueError as exc:  # includes UnsafeFileName
                report.refused.append(f"result file #{index} {label!r}: {exc}")
        return report
