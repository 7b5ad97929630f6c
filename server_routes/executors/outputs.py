"""Save a remote job's result files into ComfyUI's output folder, where /view serves them.

File names come from a machine we do not control: anything that could leave the folder (`..`,
absolute paths, drive letters, NUL bytes) is refused, the rest is reduced to a plain, safe
name (Windows device names such as `CON.png` get a leading `_`). A file's contents must match
its extension (an HTML page is not saved as `.png`), and one result keeps at most
`max_files` files. Every write lands inside `output/<subfolder>/`, through a temporary file
renamed into place: saving the same result again (after a crash mid-save) replaces each file
rather than adding a second copy.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ...parallel_runs.files import UnsafeFileName, checked_name, inside, unique_names

TEMP_PREFIX, TEMP_SUFFIX = ".parallel-runs-", ".part"
_TEXT_SUFFIXES = frozenset({".json", ".txt", ".gltf", ".obj"})


def _riff(kind: bytes) -> Any:
    return lambda data: data[:4] == b"RIFF" and data[8:12] == kind


def _mp3(data: bytes) -> bool:
    return data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _ftyp(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


# What the first bytes of each saved type look like.
_SIGNATURES: dict[str, Any] = {
    ".png": lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"),
    ".jpg": lambda d: d.startswith(b"\xff\xd8\xff"),
    ".jpeg": lambda d: d.startswith(b"\xff\xd8\xff"),
    ".gif": lambda d: d[:6] in (b"GIF87a", b"GIF89a"),
    ".bmp": lambda d: d.startswith(b"BM"),
    ".tif": lambda d: d[:4] in (b"II*\x00", b"MM\x00*"),
    ".tiff": lambda d: d[:4] in (b"II*\x00", b"MM\x00*"),
    ".webp": _riff(b"WEBP"),
    ".wav": _riff(b"WAVE"),
    ".avi": _riff(b"AVI "),
    ".mp4": _ftyp,
    ".mov": _ftyp,
    ".m4a": _ftyp,
    ".webm": lambda d: d.startswith(b"\x1a\x45\xdf\xa3"),
    ".mkv": lambda d: d.startswith(b"\x1a\x45\xdf\xa3"),
    ".mp3": _mp3,
    ".flac": lambda d: d.startswith(b"fLaC"),
    ".ogg": lambda d: d.startswith(b"OggS"),
    ".opus": lambda d: d.startswith(b"OggS"),
    ".glb": lambda d: d.startswith(b"glTF"),
}
# The types saved: those whose contents can be checked, by signature or as text.
ALLOWED_SUFFIXES = frozenset(_SIGNATURES) | _TEXT_SUFFIXES


class OutputTooLarge(ValueError):
    """The result is bigger than this server accepts."""


def safe_filename(name: Any) -> str:
    """A plain file name for a remote result file, or UnsafeFileName for anything hostile."""
    return checked_name(name, ALLOWED_SUFFIXES)


def content_matches(name: str, data: bytes) -> bool:
    """Whether `data` looks like what the extension of `name` promises: the signature of an
    image, video, audio or 3D type; UTF-8 text without NUL bytes for text types."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in _TEXT_SUFFIXES:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return b"\x00" not in data
    check = _SIGNATURES.get(suffix)
    return check is not None and bool(check(data))


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


def _entry_data(image: Mapping[str, Any], limit: int) -> bytes:
    """The bytes of one result entry: base64 text (RunPod's workers) or bytes as they came
    (downloaded from a ComfyUI server)."""
    kind = image.get("type", "base64")
    if kind == "base64":
        return decode_base64(image.get("data"), limit)
    if kind == "bytes" and isinstance(image.get("data"), bytes):
        return image["data"]
    raise ValueError(f"result type {kind!r} is not supported")


@dataclass
class SaveReport:
    """What landed where, and what was refused (with the reason a user can act on)."""

    saved: list[dict[str, str]] = field(default_factory=list)  # {filename, subfolder, type}
    sources: list[int] = field(default_factory=list)  # index of each saved file's entry
    refused: list[str] = field(default_factory=list)
    total_bytes: int = 0


@dataclass(frozen=True)
class _Accepted:
    index: int
    name: str
    data: bytes


@dataclass(frozen=True)
class OutputSaver:
    """Writes decoded files under `root/<subfolder>`; `root` is ComfyUI's output directory."""

    root: Path
    max_file_bytes: int = 100 * 1024 * 1024
    max_total_bytes: int = 300 * 1024 * 1024
    max_files: int = 1000

    def folder(self, subfolder: str) -> Path:
        try:
            return inside(self.root, safe_subfolder(subfolder))
        except UnsafeFileName:
            raise UnsafeFileName(f"subfolder {subfolder!r} leaves the output folder") from None

    def save_images(self, subfolder: str, images: Iterable[Mapping[str, Any]]) -> SaveReport:
        """Save worker-comfyui style `images` entries of type base64; others are refused.
        Saving the same entries again replaces the files saved before (never duplicates)."""
        report = SaveReport()
        accepted = self._accept(list(images), report)
        if not accepted:
            return report
        try:
            folder = self._prepare(subfolder)
        except UnsafeFileName as exc:
            report.refused.append(str(exc))
            return report
        names = unique_names(item.name for item in accepted)
        for item, name in zip(accepted, names, strict=True):
            _replace_file(folder, name, item.data)
            report.saved.append({"filename": name, "subfolder": subfolder, "type": "output"})
            report.sources.append(item.index)
            report.total_bytes += len(item.data)
        return report

    def _accept(self, images: list[Any], report: SaveReport) -> list[_Accepted]:
        """The entries that pass every check, decoded; the rest go to `report.refused`."""
        accepted: list[_Accepted] = []
        total = 0
        if len(images) > self.max_files:
            report.refused.append(
                f"{len(images) - self.max_files} more result file(s) not saved: one result "
                f"keeps at most {self.max_files} files"
            )
        for index, image in enumerate(images[: self.max_files]):
            label = image.get("filename") if isinstance(image, Mapping) else None
            label = repr(label)[:80]
            try:
                if not isinstance(image, Mapping):
                    raise ValueError("entry is not an object")
                name = safe_filename(image.get("filename"))
                room = min(self.max_file_bytes, self.max_total_bytes - total)
                data = _entry_data(image, max(room, 0))
                if len(data) > room:
                    raise OutputTooLarge(f"{len(data)} bytes exceed the remaining {room}")
                if not content_matches(name, data):
                    raise ValueError(f"its contents are not a {os.path.splitext(name)[1]} file")
            except OutputTooLarge as exc:
                report.refused.append(f"result file #{index} {label}: too large ({exc})")
                continue
            except ValueError as exc:  # includes UnsafeFileName
                report.refused.append(f"result file #{index} {label}: {exc}")
                continue
            accepted.append(_Accepted(index, name, data))
            total += len(data)
        return accepted

    def _prepare(self, subfolder: str) -> Path:
        """The folder, created and checked again (a raced-in symlink), with the temporary
        files of a save that a crash interrupted removed."""
        folder = self.folder(subfolder)
        folder.mkdir(parents=True, exist_ok=True)
        folder = self.folder(subfolder)
        for leftover in folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        return folder


def _replace_file(folder: Path, name: str, data: bytes) -> None:
    """Write `folder/name` whole or not at all: a new temporary file (never following a
    link), renamed over whatever had that name (a link itself is replaced, not followed)."""
    temp = folder / f"{TEMP_PREFIX}{uuid.uuid4().hex}{TEMP_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
