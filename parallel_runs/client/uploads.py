"""Input files sent through `POST /upload/image`, and their removal afterwards.

ComfyUI (checked on 0.3.75) has no route that deletes an uploaded input file, so an
"ephemeral" upload gets a unique name (it never clobbers or is mistaken for a user's file) and
is removed only when the server is local and its input directory is known; on a remote server
it stays. Prompts refer to inputs by name, so `rewrite_inputs` swaps the names a workflow uses
for the names the server actually stored.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ..files import UnsafeFileName, inside
from .comfy_client import ComfyClient


@dataclass(frozen=True)
class Upload:
    original: str  # the file name the caller (and its workflow) used
    name: str  # the name the server stored
    subfolder: str
    type: str
    ephemeral: bool

    @property
    def reference(self) -> str:
        """The value a loader node (LoadImage...) takes: `subfolder/name` or `name`, with
        ComfyUI's `[temp]`/`[output]` annotation outside the input folder."""
        path = f"{self.subfolder}/{self.name}" if self.subfolder else self.name
        return path if self.type == "input" else f"{path} [{self.type}]"


def ephemeral_name(filename: str) -> str:
    """`photo.png` -> `photo.pr-1a2b3c4d5e.png`: unique, still recognisable, same extension."""
    path = PurePosixPath(filename)
    return f"{path.stem}.pr-{uuid.uuid4().hex[:10]}{path.suffix}"


async def upload_file(
    client: ComfyClient,
    source: Path | bytes,
    filename: str | None = None,
    subfolder: str = "",
    overwrite: bool = False,
    ephemeral: bool = False,
    kind: str = "input",
) -> Upload:
    """Upload a path or bytes into the server's input folder (or its `temp` folder, which
    ComfyUI empties when it starts)."""
    if isinstance(source, (bytes, bytearray)):
        if not filename:
            raise ValueError("uploading bytes needs a filename")
        data = bytes(source)
    else:
        data = Path(source).read_bytes()
        filename = filename or Path(source).name
    stored_as = ephemeral_name(filename) if ephemeral else filename
    answer = await client.upload_image(
        data, stored_as, subfolder=subfolder, overwrite=overwrite, kind=kind
    )
    return Upload(
        original=filename,
        name=str(answer["name"]),
        subfolder=str(answer.get("subfolder") or ""),
        type=str(answer.get("type") or kind),
        ephemeral=ephemeral,
    )


def local_path(upload: Upload, input_dir: Path) -> Path:
    """Where a local server keeps the upload; refuses anything outside `input_dir`."""
    try:
        return inside(input_dir, os.path.join(upload.subfolder, upload.name))
    except UnsafeFileName:
        raise UnsafeFileName(
            f"{upload.reference!r} is outside the input directory {input_dir}"
        ) from None


def remove_local(upload: Upload, input_dir: Path) -> bool:
    """Delete an upload from a local server's input directory; True if a file was removed."""
    path = local_path(upload, input_dir)
    if not path.is_file():
        return False
    path.unlink()
    return True


def rewrite_inputs(prompt: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A copy of an API prompt whose string inputs equal to a key of `names` get its value."""
    rewritten: dict[str, Any] = {}
    for node_id, node in prompt.items():
        node = dict(node)
        inputs = dict(node.get("inputs") or {})
        for key, value in inputs.items():
            if isinstance(value, str) and value in names:
                inputs[key] = names[value]
        node["inputs"] = inputs
        rewritten[node_id] = node
    return rewritten
