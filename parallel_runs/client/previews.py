"""Decode ComfyUI's binary preview frames (sampler previews) into one shape.

Type 1 (PREVIEW_IMAGE): `[u32 image_kind][image bytes]`, kind 1 = JPEG, 2 = PNG, no prompt id.
Type 4 (PREVIEW_IMAGE_WITH_METADATA): `[u32 len][metadata json][image bytes]`, sent instead of
type 1 to clients that advertised `supports_preview_metadata`; the metadata names prompt and node.
"""

from __future__ import annotations

import json
import struct
from typing import Any

PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
PREVIEW_FLAG = "supports_preview_metadata"

_U32 = struct.Struct(">I")
_KINDS = {1: "image/jpeg", 2: "image/png"}


def decode_preview(event_type: int, payload: bytes) -> dict[str, Any]:
    """`{"image_type", "image", "prompt_id"?, "node"?, "display_node"?}` from a frame payload."""
    if len(payload) < 4:
        raise ValueError("preview frame shorter than its header")
    (head,) = _U32.unpack_from(payload, 0)
    if event_type == PREVIEW_IMAGE:
        return {"image_type": _KINDS.get(head, "image/jpeg"), "image": payload[4:]}
    if event_type != PREVIEW_IMAGE_WITH_METADATA:
        raise ValueError(f"binary event {event_type} is no preview")
    if len(payload) < 4 + head:
        raise ValueError("preview metadata runs past the end of the frame")
    metadata = json.loads(payload[4 : 4 + head].decode("utf-8"))
    data: dict[str, Any] = {
        "image_type": metadata.get("image_type", "image/jpeg"),
        "image": payload[4 + head :],
    }
    if metadata.get("prompt_id") is not None:
        data["prompt_id"] = str(metadata["prompt_id"])
    if metadata.get("node_id") is not None:
        data["node"] = str(metadata["node_id"])
        data["display_node"] = str(metadata.get("display_node_id") or metadata["node_id"])
    return data


def encode_preview(metadata: dict[str, Any], image: bytes) -> bytes:
    """The type-4 payload as ComfyUI builds it (for fault-free round-trip tests and relays)."""
    raw = json.dumps(metadata).encode("utf-8")
    return _U32.pack(len(raw)) + raw + image
