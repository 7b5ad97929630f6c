"""The progress-text wire codec: byte layout, round trips, and malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parallel_runs_node.parallel_runs.progress_text import (
    ProgressText,
    decode,
    encode_legacy,
    encode_scoped,
    split_frame,
)

ids = st.text(max_size=40)
texts = st.text(max_size=2000)


def test_legacy_layout_is_byte_for_byte_stock():
    # ComfyUI's own send_progress_text: struct.pack(">I", len(node)) + node + text
    assert encode_legacy("12", "hi") == struct.pack(">I", 2) + b"12" + b"hi"


def test_scoped_layout_puts_prompt_id_first():
    assert encode_scoped("p1", "7", "é") == (
        struct.pack(">I", 2) + b"p1" + struct.pack(">I", 1) + b"7" + "é".encode()
    )


def test_split_frame_reads_the_event_type():
    assert split_frame(struct.pack(">I", 3) + b"rest") == (3, b"rest")
    with pytest.raises(ValueError):
        split_frame(b"\x00\x00")


@given(prompt_id=ids, node_id=ids, text=texts)
def test_scoped_round_trip(prompt_id, node_id, text):
    payload = encode_scoped(prompt_id, node_id, text)
    assert decode(payload, scoped=True) == ProgressText(prompt_id, node_id, text)


@given(node_id=ids, text=texts)
def test_legacy_round_trip(node_id, text):
    assert decode(encode_legacy(node_id, text), scoped=False) == ProgressText(None, node_id, text)


@given(node_id=ids, text=st.binary(max_size=200).filter(lambda b: _is_utf8(b)))
def test_bytes_text_is_passed_through(node_id, text):
    assert decode(encode_legacy(node_id, text), scoped=False).text == text.decode()


@given(prompt_id=ids, node_id=ids, text=texts, cut=st.integers(min_value=0, max_value=7))
def test_truncated_headers_raise_value_error(prompt_id, node_id, text, cut):
    payload = encode_scoped(prompt_id, node_id, text)
    header = 4 + len(prompt_id.encode()) + 4
    # Cutting inside the second length field (or before it) must not decode silently.
    truncated = payload[: max(0, header - 1 - cut)]
    with pytest.raises(ValueError):
        decode(truncated, scoped=True)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
