"""Wire codec for ComfyUI's type-3 (progress text) binary frames, legacy and prompt-scoped.

Payloads here exclude the leading u32 event type, which `PromptServer.encode_bytes` adds.
Legacy:  [u32 len][node_id][text]
Scoped:  [u32 len][prompt_id][u32 len][node_id][text]   (feature `supports_progress_text_metadata`)
"""

from __future__ import annotations

import struct
from typing import NamedTuple

TEXT_EVENT = 3
FEATURE_FLAG = "supports_progress_text_metadata"

_U32 = struct.Struct(">I")


class ProgressText(NamedTuple):
    """One decoded progress-text message; `prompt_id` is None for the legacy layout."""

    prompt_id: str | None
    node_id: str
    text: str


def _as_bytes(value: str | bytes | bytearray) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def encode_legacy(node_id: str, text: str | bytes | bytearray) -> bytes:
    """The stock layout, byte for byte what ComfyUI's `send_progress_text` builds."""
    node = str(node_id).encode("utf-8")
    return _U32.pack(len(node)) + node + _as_bytes(text)


def encode_scoped(prompt_id: str, node_id: str, text: str | bytes | bytearray) -> bytes:
    """The layout a frontend decodes once the server advertises `FEATURE_FLAG`."""
    prompt = prompt_id.encode("utf-8")
    return _U32.pack(len(prompt)) + prompt + encode_legacy(node_id, text)


def _read_field(payload: bytes, offset: int) -> tuple[str, int]:
    if len(payload) < offset + 4:
        raise ValueError("progress_text payload truncated before a length field")
    (length,) = _U32.unpack_from(payload, offset)
    start = offset + 4
    if len(payload) < start + length:
        raise ValueError("progress_text length field runs past the end of the payload")
    return payload[start : start + length].decode("utf-8"), start + length


def decode(payload: bytes, scoped: bool) -> ProgressText:
    """Decode as the stock frontend does: the layout is chosen by the negotiated flag."""
    offset = 0
    prompt_id = None
    if scoped:
        prompt_id, offset = _read_field(payload, offset)
    node_id, offset = _read_field(payload, offset)
    return ProgressText(prompt_id, node_id, payload[offset:].decode("utf-8"))


def split_frame(frame: bytes) -> tuple[int, bytes]:
    """Split a whole websocket binary frame into (event type, payload)."""
    if len(frame) < 4:
        raise ValueError("binary frame shorter than its event type")
    return _U32.unpack_from(frame, 0)[0], frame[4:]
