"""Input files a prompt refers to (LoadImage & co.), attached to the job as worker-comfyui
`images` so the remote worker has them.

Names come from the browser: only files inside ComfyUI's input (or output/temp, when the name is
annotated so) folder are read. The prompt sent out refers to the attached, flattened names.
"""

from __future__ import annotations

import base64
import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


@dataclass
class AttachedInputs:
    prompt: dict[str, Any]
    images: list[dict[str, str]] = field(default_factory=list)  # [{"name", "image": base64}]
    total_bytes: int = 0


def split_annotation(value: str) -> tuple[str, str]:
    """`"a.png [output]"` -> ("a.png", "output"); no annotation means the input folder."""
    match = _ANNOTATION.match(value)
    return (match["name"], match["kind"]) if match else (value, "input")


def resolve_inside(base: Path, name: str) -> Path:
    """The real path of `name` under `base`, or ValueError if it would leave `base`."""
    if not name or "\x00" in name or os.path.isabs(name) or re.match(r"^[A-Za-z]:", name):
        raise ValueError(f"file name {name!r} is not a relative name")
    if any(part == ".." for part in re.split(r"[\\/]+", name)):
        raise ValueError(f"file name {name!r} leaves the folder")
    root = os.path.realpath(base)
    path = os.path.realpath(os.path.join(root, name))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"file name {name!r} leaves the folder")
    return Path(path)


def _unique(name: str, taken: set[str]) -> str:
    stem, suffix = os.path.splitext(name)
    candidate, n = name, 1
    while candidate in taken:
        candidate, n = f"{stem}_{n}{suffix}", n + 1
    return candidate


def attach_input_images(prompt: Mapping[str, Any], folders: Mapping[str, Path]) -> AttachedInputs:
    """Copy of `prompt` with file inputs renamed to the attached names, plus the `images`.

    `folders` maps "input"/"output"/"temp" to ComfyUI's folders.
    """
    result = AttachedInputs(prompt=copy.deepcopy(dict(prompt)))
    by_path: dict[Path, str] = {}
    taken: set[str] = set()
    for node_id, node in result.prompt.items():
        input_name = FILE_INPUTS.get(node.get("class_type", ""))
        value = (node.get("inputs") or {}).get(input_name) if input_name else None
        if not isinstance(value, str):
            continue  # a link from another node, or no such input
        name, kind = split_annotation(value)
        base = folders.get(kind)
        if base is None:
            raise PromptInputError(node_id, f"node {node_id}: no {kind} folder for {value!r}")
        try:
            path = resolve_inside(base, name)
        except ValueError as exc:
            raise PromptInputError(
                node_id, f"node {node_id} ({node['class_type']}): {exc}"
            ) from exc
        if not path.is_file():
            raise PromptInputError(
                node_id,
                f"node {node_id} ({node['class_type']}): {name!r} is not in ComfyUI's "
                f"{kind} folder; upload it first",
            )
        if path not in by_path:
            attached = _unique(path.name, taken)
            taken.add(attached)
            data = path.read_bytes()
            result.total_bytes += len(data)
            result.images.append({"name": attached, "image": base64.b64encode(data).decode()})
            by_path[path] = attached
        node["inputs"][input_name] = by_path[path]
    return result
