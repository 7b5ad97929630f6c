"""Installing the progress-text scope on a PromptServer-shaped object: once, and only when
the core does not scope frames itself."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from parallel_runs_node.parallel_runs.progress_text import FEATURE_FLAG, decode
from parallel_runs_node.server_routes.patches.progress_scope import (
    JSON_EVENT,
    ScopedPayload,
    client_for_prompt,
    install_progress_scope,
)


class Recorder:
    """Just enough of PromptServer to watch what the wrappers send, and to whom."""

    def __init__(self, clients: dict[str, dict]) -> None:
        self.sockets = dict.fromkeys(clients)
        self.sockets_metadata = {sid: {"feature_flags": f} for sid, f in clients.items()}
        self.sent: list[tuple] = []
        self.queued: list[tuple] = []
        self.last_prompt_id = "p-last"
        self.client_id = "a"
        self.prompt_queue = SimpleNamespace(currently_running={})

    def send_sync(self, event, data, sid=None):
        self.queued.append((event, data, sid))

    async def send_bytes(self, event, data, sid=None):
        self.sent.append(("bytes", event, bytes(data), sid))

    async def send_json(self, event, data, sid=None):
        self.sent.append(("json", event, data, sid))

    def send_progress_text(self, text, node_id, sid=None):
        raise AssertionError("the stock method must be replaced")


def test_install_is_idempotent_and_advertises_the_flag():
    server, flags = Recorder({}), {}
    original_send_bytes = server.send_bytes
    assert install_progress_scope(server, flags) == "package"
    wrapped = server.send_bytes
    assert install_progress_scope(server, flags) == "package"
    assert server.send_bytes is wrapped and wrapped is not original_send_bytes
    assert flags == {FEATURE_FLAG: True}


def test_core_that_already_scopes_is_left_alone():
    server, flags = Recorder({}), {FEATURE_FLAG: True}
    stock = server.send_progress_text
    assert install_progress_scope(server, flags) == "core"
    assert server.send_progress_text == stock


def test_each_recipient_gets_its_negotiated_layout():
    server = Recorder({"new": {FEATURE_FLAG: True}, "old": {}})
    install_progress_scope(server, {})
    server.send_progress_text("hello", 5)  # no execution context: falls back to last prompt
    ((event, payload, target),) = server.queued
    assert isinstance(payload, ScopedPayload) and target == "a"  # the running prompt's client
    target = None  # as if broadcast: both clients receive it
    asyncio.run(server.send_bytes(event, payload, target))
    by_sid = {(kind, sid): data for kind, _, data, sid in server.sent}
    assert decode(by_sid["bytes", "new"], scoped=True) == ("p-last", "5", "hello")
    assert decode(by_sid["bytes", "old"], scoped=False) == (None, "5", "hello")
    assert by_sid["json", "old"] == {
        "prompt_id": "p-last",
        "node": "5",
        "display_node": "5",
        "text": "hello",
    }
    assert ("json", "new") not in by_sid
    assert [e for kind, e, *_ in server.sent if kind == "json"] == [JSON_EVENT]


def test_frames_built_elsewhere_in_legacy_layout_are_scoped_too():
    server = Recorder({"new": {FEATURE_FLAG: True}})
    install_progress_scope(server, {})
    legacy = b"\x00\x00\x00\x019text"
    asyncio.run(server.send_bytes(3, legacy, None))
    assert decode(server.sent[0][2], scoped=True) == ("p-last", "9", "text")


def test_other_binary_events_pass_untouched():
    server = Recorder({"new": {FEATURE_FLAG: True}})
    install_progress_scope(server, {})
    asyncio.run(server.send_bytes(1, b"jpeg", "new"))
    assert server.sent == [("bytes", 1, b"jpeg", "new")]


def test_client_lookup_for_a_queued_prompt():
    server = Recorder({})
    server.prompt_queue.currently_running = {7: (0, "p-other", {}, {"client_id": "b"}, [])}
    assert client_for_prompt(server, "p-last") == "a"
    assert client_for_prompt(server, "p-other") == "b"
    assert client_for_prompt(server, "p-unknown") is None
    assert client_for_prompt(server, None) is None


def test_before_the_first_prompt_text_is_broadcast_with_an_empty_prompt_id():
    server = Recorder({"new": {FEATURE_FLAG: True}})
    del server.last_prompt_id  # ComfyUI sets it only once a prompt has run
    install_progress_scope(server, {})
    server.send_progress_text("early", "1")
    ((event, payload, target),) = server.queued
    assert target is None
    asyncio.run(server.send_bytes(event, payload, target))
    assert decode(server.sent[0][2], scoped=True) == ("", "1", "early")


def test_flags_that_are_not_an_object_count_as_none():
    server = Recorder(
        {"s": "x", "l": [FEATURE_FLAG], "n": None, "i": 3, "new": {FEATURE_FLAG: True}}
    )
    server.sockets_metadata["gone"] = "not even a dict"
    server.sockets["gone"] = None
    install_progress_scope(server, {})
    asyncio.run(server.send_bytes(3, ScopedPayload("p1", "4", b"hi"), None))
    legacy = {
        sid for kind, _, data, sid in server.sent if kind == "bytes" and data[:4] != b"\0\0\0\2"
    }
    assert legacy == {"s", "l", "n", "i", "gone"}
    json_to = {sid for kind, _, _, sid in server.sent if kind == "json"}
    assert json_to == {"s", "l", "n", "i", "gone"}
    (scoped,) = [data for kind, _, data, sid in server.sent if sid == "new"]
    assert decode(scoped, scoped=True) == ("p1", "4", "hi")


class Exploding(dict):
    def get(self, *_args):
        raise RuntimeError("a ComfyUI whose client table we do not understand")


def test_a_failing_wrapper_falls_back_to_the_stock_frame_and_logs_once(caplog):
    server = Recorder({"a": {FEATURE_FLAG: True}})
    server.sockets_metadata = Exploding(server.sockets_metadata)
    install_progress_scope(server, {})
    payload = ScopedPayload("p1", "4", b"hi")
    for _ in range(3):
        asyncio.run(server.send_bytes(3, payload, "a"))
    assert server.sent == [("bytes", 3, bytes(payload), "a")] * 3  # stock: legacy, as given
    failures = [r for r in caplog.records if "progress text failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None
