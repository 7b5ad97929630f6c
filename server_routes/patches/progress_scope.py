"""Make every progress-text frame carry its prompt id and reach the client that queued it.

Stock ComfyUI broadcasts `[u32 3][node_id][text]` to every tab. We wrap two methods of the
running `PromptServer`:
- `send_progress_text` (called on the execution thread) resolves the prompt id from the
  execution context and the queuing client, and enqueues a `ScopedPayload`;
- `send_bytes` (the publish loop's only exit for binary frames) writes each type-3 frame in
  the layout its recipient negotiated, and adds a `parallel.progress_text` JSON event for
  clients that cannot decode the scoped layout.
Ordering with the prompt's other events is kept because everything still goes through the
server's own message queue.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from ...parallel_runs.progress_text import FEATURE_FLAG, TEXT_EVENT, decode, encode_legacy
from ..clients import connected_clients
from .fallback import Fallback
from .guard import expect_method

try:  # ComfyUI >= 0.3.4x keeps the executing prompt in a context variable
    from comfy_execution.utils import get_executing_context
except ImportError:  # older ComfyUI, or no ComfyUI at all (unit tests)

    def get_executing_context() -> None:
        return None


log = logging.getLogger(__name__)
_U32 = struct.Struct(">I")

JSON_EVENT = "parallel.progress_text"
_MARK = "_parallel_runs_progress_scope"


class ScopedPayload(bytes):
    """A legacy-layout payload that also remembers its prompt id.

    It *is* the stock bytes, so any code path that does not know about it (or a server
    without our `send_bytes` wrapper) still sends a valid legacy frame.
    """

    prompt_id: str | None
    node_id: str
    text: bytes

    def __new__(cls, prompt_id: str | None, node_id: str, text: bytes) -> ScopedPayload:
        self = super().__new__(cls, encode_legacy(node_id, text))
        self.prompt_id, self.node_id, self.text = prompt_id, node_id, text
        return self

    def scoped(self) -> bytes:
        """The scoped layout is the legacy payload behind a length-prefixed prompt id."""
        prompt = (self.prompt_id or "").encode("utf-8")
        return _U32.pack(len(prompt)) + prompt + self


def current_prompt_id(server: Any) -> str | None:
    """The executing prompt: the execution context first, else the server's last prompt."""
    context = get_executing_context()
    if context is not None and context.prompt_id:
        return context.prompt_id
    return getattr(server, "last_prompt_id", None)


def client_for_prompt(server: Any, prompt_id: str | None) -> str | None:
    """The client id that queued `prompt_id`, or None when unknown (then we broadcast)."""
    if prompt_id is None:
        return None
    if prompt_id == getattr(server, "last_prompt_id", None):
        return getattr(server, "client_id", None)  # the executor sets it per prompt
    queue = getattr(server, "prompt_queue", None)
    running = getattr(queue, "currently_running", None) or {}
    for item in list(running.values()):
        if len(item) > 3 and item[1] == prompt_id and isinstance(item[3], dict):
            return item[3].get("client_id")
    return None


def _as_scoped(server: Any, data: bytes) -> ScopedPayload:
    """Frames built elsewhere in legacy layout get the best prompt id we can find."""
    if isinstance(data, ScopedPayload):
        return data
    try:
        message = decode(bytes(data), scoped=False)
    except (ValueError, UnicodeDecodeError):
        return ScopedPayload(getattr(server, "last_prompt_id", None), "", bytes(data))
    prompt_id = getattr(server, "last_prompt_id", None)
    return ScopedPayload(prompt_id, message.node_id, message.text.encode("utf-8"))


def make_send_progress_text(
    server: Any, original: Callable[..., None], fallback: Fallback
) -> Callable[..., None]:
    """Replacement for `PromptServer.send_progress_text`; same signature, thread-safe."""

    def send_progress_text(
        text: str | bytes | bytearray, node_id: Any, sid: str | None = None, **_: Any
    ) -> None:
        try:
            prompt_id = current_prompt_id(server)
            target = sid if sid is not None else client_for_prompt(server, prompt_id)
            raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
            payload = ScopedPayload(prompt_id, str(node_id), raw)
        except Exception as error:
            fallback.failed(error)
            original(text, node_id, sid)
            return
        server.send_sync(TEXT_EVENT, payload, target)

    return send_progress_text


# what one type-3 frame becomes for one recipient: (recipient, binary payload, JSON event)
Delivery = tuple[str, bytes, "dict[str, str] | None"]


def plan_progress_text(server: Any, data: bytes, sid: str | None) -> list[Delivery]:
    """For each recipient: the frame in the layout it negotiated, plus the JSON event for
    clients that cannot decode the scoped layout."""
    payload = _as_scoped(server, data)
    scoped_bytes: bytes | None = None
    json_event: dict[str, str] | None = None
    deliveries: list[Delivery] = []
    for recipient, flags in connected_clients(server, sid).items():
        if flags.get(FEATURE_FLAG) is True:
            scoped_bytes = scoped_bytes if scoped_bytes is not None else payload.scoped()
            deliveries.append((recipient, scoped_bytes, None))
            continue
        if json_event is None:
            json_event = {
                "prompt_id": payload.prompt_id or "",
                "node": payload.node_id,
                "display_node": payload.node_id,
                "text": payload.text.decode("utf-8", errors="replace"),
            }
        deliveries.append((recipient, payload, json_event))
    return deliveries


def make_send_bytes(
    server: Any, original: Callable[..., Awaitable[None]], fallback: Fallback
) -> Callable[..., Awaitable[None]]:
    """Replacement for `PromptServer.send_bytes` that writes type-3 frames per recipient.
    It runs in ComfyUI's publish loop: if planning fails, the frame goes out as stock."""

    async def send_bytes(event: int, data: bytes, sid: str | None = None) -> None:
        if event != TEXT_EVENT:
            await original(event, data, sid=sid)
            return
        try:
            deliveries = plan_progress_text(server, data, sid)
        except Exception as error:
            fallback.failed(error)
            await original(event, data, sid=sid)
            return
        for recipient, frame, json_event in deliveries:
            await original(TEXT_EVENT, frame, sid=recipient)
            if json_event is not None:
                await server.send_json(JSON_EVENT, json_event, sid=recipient)

    return send_bytes


def install_progress_scope(server: Any, server_feature_flags: dict[str, Any]) -> str:
    """Patch `server` once and say how progress text is scoped: "package", or "core" when
    this ComfyUI already advertises the flag and encodes scoped frames itself (then we
    leave it alone rather than encode twice). PatchRefused (nothing changed) when the
    methods it wraps are not what it expects."""
    if getattr(server, _MARK, None):
        return getattr(server, _MARK)
    mode = "core" if FEATURE_FLAG in server_feature_flags else "package"
    if mode == "package":
        expect_method(server, "send_progress_text", ("text", "node_id", "sid"), coroutine=False)
        expect_method(server, "send_bytes", ("event", "data", "sid"), coroutine=True)
        expect_method(server, "send_sync", ("event", "data", "sid"), coroutine=False)
        fallback = Fallback("prompt-scoped progress text")
        server.send_progress_text = make_send_progress_text(
            server, server.send_progress_text, fallback
        )
        server.send_bytes = make_send_bytes(server, server.send_bytes, fallback)
        server_feature_flags[FEATURE_FLAG] = True
    setattr(server, _MARK, mode)
    log.debug("parallel-runs: progress text scoped by %s", mode)
    return mode
