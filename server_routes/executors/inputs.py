"""Input files a prompt refers to (LoadImage & co.): found and checked here, then attached to
a RunPod job as worker-comfyui `images`, or uploaded to another ComfyUI server.

Names come from the browser: only files inside ComfyUI's input (or output/temp, when the name is
annotated so) folder are read. The prompt sent out refers to the attached, flattened names.
Sizes are checked from `stat` before a file is read, so a huge file is refused, not loaded.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...parallel_runs.files import inside, plain_name, unique_name

# class_type -> the input holding a file name relative to ComfyUI's input folder
FILE_INPUTS: Mapping[str, str] = {
    "LoadImage": "image",
    "LoadImageMask": "image",
    "LoadImageOutput": "image",
}
_ANNOTATION = re.compile(r"^(?P<name>.*?)\s*\[(?P<kind>input|output|temp)\]$")


class PromptInputError(ValueError):
    """A referenced input file is missing or not allowed; says which node and why."""

    def __init__(self, node_id: str, message: str) -> None:
        super().__init__(message)
        self.node_id = node_id


class InputsTooLarge(PromptInputError):
    """The attached files would not fit in one job (RunPod's `/run` body limit)."""


def encoded_size(size: int) -> int:
    """Length of `size` bytes in base64 (4 characters per 3 bytes, padded)."""
    return 4 * ((size + 2) // 3)


@dataclass
class AttachedInputs:
    prompt: dict[str, Any]
    images: list[dict[str, str]] = field(default_factory=list)  # [{"name", "image": base64}]
    total_bytes: int = 0


def split_annotation(value: str) -> tuple[str, str]:
    """`"a.png [output]"` -> ("a.png", "output"); no annotation means the input folder."""
    match = _ANNOTATION.match(value)
    return (match["name"], match["kind"]) if match else (value, "input")


def _unreadable(node_id: str, class_type: str, path: Path, exc: OSError) -> PromptInputError:
    reason = exc.strerror or type(exc).__name__
    return PromptInputError(node_id, f"node {node_id} ({class_type}): {path.name!r}: {reason}")


def _locate(node_id: str, class_type: str, value: str, folders: Mapping[str, Path]) -> Path:
    """The file a node's input names, inside the folder its annotation says."""
    name, kind = split_annotation(value)
    base = folders.get(kind)
    if base is None:
        raise PromptInputError(node_id, f"node {node_id}: no {kind} folder for {value!r}")
    try:
        path = inside(base, name)
    except ValueError as exc:
        raise PromptInputError(node_id, f"node {node_id} ({class_type}): {exc}") from exc
    if not path.is_file():
        raise PromptInputError(
            node_id,
            f"node {node_id} ({class_type}): {name!r} is not in ComfyUI's "
            f"{kind} folder; upload it first",
        )
    return path


def _read_within(
    node_id: str, class_type: str, path: Path, encoded: int, limit: int | None
) -> bytes:
    """The file's bytes, unless its size (from stat, before reading) would take the
    base64-encoded total past `limit`."""
    try:
        size = path.stat().st_size
        total = encoded + encoded_size(size)
        if limit is not None and total > limit:
            raise InputsTooLarge(
                node_id,
                f"node {node_id} ({class_type}): {path.name!r} ({size / 1e6:.1f} MB) brings "
                f"the input files to {total / 1e6:.1f} MB once encoded; RunPod accepts at "
                f"most {limit / 1e6:.1f} MB per job: use smaller input images",
            )
        return path.read_bytes()
    except OSError as exc:
        raise _unreadable(node_id, class_type, path, exc) from exc


@dataclass(frozen=True)
class InputFile:
    """One file a node's input names, found inside the folder its annotation says."""

    node_id: str
    class_type: str
    input_name: str
    value: str  # as the prompt names it
    path: Path


def input_files(prompt: Mapping[str, Any], folders: Mapping[str, Path]) -> list[InputFile]:
    """The files `prompt` loads, node by node; PromptInputError for one that is missing or
    outside ComfyUI's folders."""
    found: list[InputFile] = []
    for node_id, node in prompt.items():
        class_type = node.get("class_type", "")
        input_name = FILE_INPUTS.get(class_type)
        value = (node.get("inputs") or {}).get(input_name) if input_name else None
        if input_name and isinstance(value, str):  # else a link from another node, or none
            path = _locate(node_id, class_type, value, folders)
            found.append(InputFile(node_id, class_type, input_name, value, path))
    return found


def attach_input_images(
    prompt: Mapping[str, Any], folders: Mapping[str, Path], limit: int | None = None
) -> AttachedInputs:
    """Copy of `prompt` with file inputs renamed to the attached names, plus the `images`.

    `folders` maps "input"/"output"/"temp" to ComfyUI's folders. With `limit`, the files'
    base64 size is added up from `stat` and InputsTooLarge raised before reading past it.
    """
    result = AttachedInputs(prompt=copy.deepcopy(dict(prompt)))
    encoded = 0
    by_path: dict[Path, str] = {}
    taken: set[str] = set()
    for found in input_files(result.prompt, folders):
        path = found.path
        if path not in by_path:
            data = _read_within(found.node_id, found.class_type, path, encoded, limit)
            encoded += encoded_size(len(data))  # what was read (the file may have changed)
            attached = unique_name(plain_name(path.name), taken)
            result.total_bytes += len(data)
            result.images.append({"name": attached, "image": base64.b64encode(data).decode()})
            by_path[path] = attached
        result.prompt[found.node_id]["inputs"][found.input_name] = by_path[path]
    return result
