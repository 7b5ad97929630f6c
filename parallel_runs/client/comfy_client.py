"""Async ComfyUI client: one websocket per client id, ComfyUI's HTTP routes, events decoded.

Binary frames are decoded the way the stock frontend does, including prompt-scoped progress
text when both sides negotiated `supports_progress_text_metadata`, and previews with their
prompt id when `supports_preview_metadata` was negotiated. Connection failures surface as
`ServerUnavailable` rather than raw aiohttp errors so that callers can report them plainly.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..capped_read import read_capped
from ..progress_text import FEATURE_FLAG, TEXT_EVENT, decode, split_frame
from .errors import ComfyError, PromptRejected, ServerUnavailable
from .previews import PREVIEW_FLAG, PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA, decode_preview

__all__ = ["DEFAULT_FEATURE_FLAGS", "ComfyClient", "ComfyError", "Event"]

# What a current frontend advertises that this client also understands.
DEFAULT_FEATURE_FLAGS: Mapping[str, Any] = {FEATURE_FLAG: True, PREVIEW_FLAG: True}
CONNECT_RETRY = 0.5  # seconds between two tries of a server that does not answer yet


# The mark this package's server side puts in the extra data of a prompt it lists in ComfyUI's
# /queue while the prompt runs on another executor (server_routes/stock_queue/shapes.py).
OFFLOADED_KEY = "parallel_runs"


def runs_elsewhere(item: Any) -> bool:
    """Whether a /queue item is a prompt its server sent to another executor."""
    extra = item[3] if isinstance(item, list | tuple) and len(item) > 3 else None
    mark = extra.get(OFFLOADED_KEY) if isinstance(extra, Mapping) else None
    return isinstance(mark, Mapping) and bool(mark.get("executor"))


@dataclass(frozen=True)
class Event:
    """One websocket message: JSON events keep their type; progress text becomes
    `progress_text` {prompt_id?, node, text}, previews `preview` {image_type, image, prompt_id?,
    node?}; other binary frames get `b_<n>` types with the raw payload."""

    type: str
    data: Any


@dataclass
class ComfyClient:
    """`feature_flags=None` behaves like an old script: it never sends its flags."""

    url: str
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    feature_flags: Mapping[str, Any] | None = field(
        default_factory=lambda: dict(DEFAULT_FEATURE_FLAGS)
    )
    server_flags: dict[str, Any] = field(default_factory=dict)
    heartbeat: float | None = 30.0
    headers: Mapping[str, str] | None = None  # on every request (a proxy's auth header)
    timeout: float | None = None  # seconds per HTTP request (None: no limit)
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    async def __aenter__(self) -> ComfyClient:
        await self.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def connect(self, wait: float = 0.0) -> None:
        """Open the HTTP session and the websocket; `ServerUnavailable` if nobody answers.
        A server that does not answer is tried again for `wait` seconds (one still starting,
        as on a worker that has just booted)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return await self._connect_once()
            except ServerUnavailable:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
            await asyncio.sleep(min(CONNECT_RETRY, left))

    async def _connect_once(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        self._session = self._session or aiohttp.ClientSession(
            headers=dict(self.headers or {}), timeout=timeout
        )
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        try:
            self._ws = await self._session.ws_connect(
                ws_url, max_msg_size=0, heartbeat=self.heartbeat
            )
        except (aiohttp.ClientError, OSError) as error:
            await self.close()
            raise ServerUnavailable(f"cannot reach ComfyUI at {self.url}: {error}") from error
        if self.feature_flags is not None:
            await self._ws.send_json({"type": "feature_flags", "data": dict(self.feature_flags)})

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        self._ws = self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("client is not connected")
        return self._session

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
        """One HTTP call; (status, body). Connection errors become `ServerUnavailable`."""
        try:
            async with self.session.request(method, f"{self.url}{path}", **kwargs) as response:
                return response.status, await response.read()
        except (aiohttp.ClientConnectionError, OSError) as error:
            raise ServerUnavailable(
                f"cannot reach ComfyUI at {self.url} ({method} {path}): {error or type(error)}"
            ) from error

    async def call_json(self, method: str, path: str, **kwargs: Any) -> Any:
        """An HTTP call that must succeed; its JSON body (or None when empty)."""
        status, body = await self.request(method, path, **kwargs)
        parsed = _parse(body)
        if status != 200:
            raise ComfyError(status, parsed)
        return parsed

    async def queue(
        self,
        prompt: Mapping[str, Any],
        extra_data: Mapping[str, Any] | None = None,
        prompt_id: str | None = None,
    ) -> str:
        """Queue an API prompt for this client; returns its prompt id. A caller that picks
        `prompt_id` itself can start listening for it before the server answers."""
        body: dict[str, Any] = {"prompt": prompt, "client_id": self.client_id}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        if prompt_id is not None:
            body["prompt_id"] = prompt_id
        status, raw = await self.request("POST", "/prompt", json=body)
        answer = _parse(raw)
        if status == 400 and isinstance(answer, Mapping):
            raise PromptRejected(status, answer)
        if status != 200:
            raise ComfyError(status, answer)
        return answer["prompt_id"]

    async def object_info(self) -> dict[str, Any]:
        return await self.call_json("GET", "/object_info")

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The history entry of one prompt, or None while the server has none."""
        answer = await self.call_json("GET", f"/history/{prompt_id}")
        return (answer or {}).get(prompt_id)

    async def queue_ids(self) -> tuple[list[str], list[str]]:
        """(running prompt ids, pending prompt ids) of the prompts the server runs itself now:
        a server with this package also lists the ones it sent elsewhere (`runs_elsewhere`),
        which neither occupy it nor were queued there by anyone who asks."""
        answer = await self.call_json("GET", "/queue")
        running = [str(i[1]) for i in answer.get("queue_running", []) if not runs_elsewhere(i)]
        pending = [str(i[1]) for i in answer.get("queue_pending", []) if not runs_elsewhere(i)]
        return running, pending

    async def interrupt(self, prompt_id: str) -> None:
        """Interrupt this prompt only (the server ignores it unless that prompt runs)."""
        await self.call_json("POST", "/interrupt", json={"prompt_id": prompt_id})

    async def delete_queued(self, prompt_ids: Sequence[str]) -> None:
        await self.call_json("POST", "/queue", json={"delete": list(prompt_ids)})

    async def delete_history(self, prompt_ids: Sequence[str]) -> None:
        await self.call_json("POST", "/history", json={"delete": list(prompt_ids)})

    async def view(
        self, filename: str, subfolder: str = "", kind: str = "output", limit: int | None = None
    ) -> bytes:
        """The bytes of one file the server keeps (`/view`, as the frontend fetches them);
        with `limit`, AnswerTooLarge past that many bytes (nothing more is read)."""
        params = {"filename": filename, "subfolder": subfolder, "type": kind}
        try:
            async with self.session.get(f"{self.url}/view", params=params) as response:
                if response.status != 200:
                    text = (await response.content.read(200)).decode("utf-8", "replace")
                    raise ComfyError(response.status, text)
                if limit is None:
                    return await response.read()
                return await read_capped(response, limit)
        except (aiohttp.ClientConnectionError, OSError) as error:
            message = f"cannot reach ComfyUI at {self.url} (GET /view): {error}"
            raise ServerUnavailable(message) from error

    async def upload_image(
        self,
        data: bytes,
        filename: str,
        subfolder: str = "",
        overwrite: bool = False,
        kind: str = "input",
    ) -> dict[str, Any]:
        """`POST /upload/image`; returns {name, subfolder, type}: `name` may differ from
        `filename` when a different file of that name exists and `overwrite` is off."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type="application/octet-stream")
        form.add_field("type", kind)
        form.add_field("subfolder", subfolder)
        form.add_field("overwrite", "true" if overwrite else "false")
        return await self.call_json("POST", "/upload/image", data=form)

    def decode_binary(self, frame: bytes) -> Event:
        event_type, payload = split_frame(frame)
        if event_type in (PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA):
            return Event("preview", decode_preview(event_type, payload))
        if event_type != TEXT_EVENT:
            return Event(f"b_{event_type}", payload)
        scoped = self.feature_flags is not None and self.server_flags.get(FEATURE_FLAG) is True
        message = decode(payload, scoped=scoped and bool(self.feature_flags.get(FEATURE_FLAG)))
        data = {"node": message.node_id, "text": message.text}
        if message.prompt_id is not None:
            data["prompt_id"] = message.prompt_id
        return Event("progress_text", data)

    async def events(self) -> AsyncIterator[Event]:
        """Every message until the socket closes (then the iteration simply ends)."""
        if self._ws is None:
            raise RuntimeError("client is not connected")
        async for message in self._ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                yield self.decode_binary(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                parsed = json.loads(message.data)
                if parsed.get("type") == "feature_flags":
                    self.server_flags = dict(parsed.get("data") or {})
                yield Event(parsed.get("type", ""), parsed.get("data"))


def _parse(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")
