"""Async client for RunPod serverless endpoints (`/run`, `/status`, `/cancel`) on aiohttp,
without the heavy `runpod` SDK so the ComfyUI plugin stays light.

Every failure becomes a `RunpodError` subclass; 429 and 5xx answers are retried with bounded
exponential backoff and jitter (honouring `Retry-After`). A network failure of any kind
(connection, timeout, a broken or truncated body) is status 0, retried for GETs only. The API
key travels only in the Authorization header and is scrubbed from every message and repr.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from .. import safe_json
from ..capped_read import AnswerTooLarge, read_capped
from ..validation import describe
from .models import ID_PATTERN, EndpointHealth, JobStatus

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
# RunPod refuses `/run` bodies above 10 MB; checking first gives a clear error, not a 413.
MAX_RUN_BYTES = 10 * 1024 * 1024
# What is read of an answer. RunPod returns results of at most 20 MB (its /runsync limit; /run
# takes 10 MB): a status answer may carry one, with room to spare; other answers are small.
MAX_STATUS_BYTES = 32 * 1024 * 1024
MAX_ANSWER_BYTES = 1024 * 1024
# Answers bigger than this are decoded and parsed in a thread: ComfyUI's loop never waits.
PARSE_INLINE_BYTES = 256 * 1024
RETRYABLE = frozenset({429, 500, 502, 503, 504})
# Keys are scrubbed from whole answers from this length on (RunPod's keys are about 40
# characters); a shorter one, which no real account has, could match inside image data.
MIN_SCRUBBED_KEY = 12
_ID = re.compile(ID_PATTERN)

Model = TypeVar("Model", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]


class RunpodError(Exception):
    """Base of every RunPod failure; `status` is the HTTP status (0 when none came back)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class RunpodAuthError(RunpodError):
    """401/403: the key is missing, wrong or lacks access to the endpoint."""


class RunpodNotFound(RunpodError):
    """404: unknown endpoint or job, or a result RunPod no longer keeps."""


class RunpodRateLimited(RunpodError):
    """429 still after the retries."""


class RunpodServerError(RunpodError):
    """5xx still after the retries, RunPod unreachable, or an answer that makes no sense."""


class RunpodBadRequest(RunpodError, ValueError):
    """The request itself is wrong (invalid id, 400 from RunPod)."""


class RunpodPayloadTooLarge(RunpodError):
    """The `/run` body exceeds RunPod's limit; raised before anything is sent."""

    def __init__(self, size: int, limit: int = MAX_RUN_BYTES) -> None:
        super().__init__(
            413,
            f"job input is {size / 1e6:.1f} MB ({size} bytes); RunPod accepts at most "
            f"{limit / 1e6:.1f} MB ({limit} bytes) per /run request",
        )
        self.size, self.limit = size, limit


class RunpodAnswerTooLarge(RunpodError):
    """An answer longer than this client reads (a result that should have come as a URL,
    or a misbehaving proxy); reading stopped at the limit."""

    def __init__(self, status: int, limit: int) -> None:
        super().__init__(
            status,
            f"RunPod's answer is larger than {limit // 2**20} MB, more than this package "
            "reads (RunPod itself returns at most 20 MB); make the worker return large results "
            "as s3_url, or fewer or smaller files",
        )
        self.limit = limit


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` extra attempts after the first; delays grow `base_delay * 2**n`, capped."""

    retries: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25  # fraction of the delay added at random
    max_retry_after: float = 30.0  # a longer Retry-After fails fast instead of hanging

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        delay = min(self.base_delay * (2**attempt), self.max_delay)
        return delay + random.uniform(0.0, delay * self.jitter)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _check_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise RunpodBadRequest(400, f"invalid {kind}: use letters, digits, '-' and '_' only")
    return value


class RunpodClient:
    """One endpoint family on one RunPod base URL; share one aiohttp session across clients."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy = RetryPolicy(),
        *,
        timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not api_key:
            raise RunpodAuthError(401, "no RunPod API key is configured")
        self._session = session
        self.__key = api_key
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"RunpodClient(base_url={self.base_url!r}, api_key=<hidden>)"

    __str__ = __repr__

    # ------------------------------------------------------------------ API

    async def run(self, endpoint_id: str, job_input: dict[str, Any]) -> JobStatus:
        body = json.dumps({"input": job_input}, separators=(",", ":")).encode()
        if len(body) > MAX_RUN_BYTES:
            raise RunpodPayloadTooLarge(len(body))
        url = self._url(endpoint_id, "run")
        return await self._call("POST", url, JobStatus, body=body)

    async def status(self, endpoint_id: str, job_id: str, *, once: bool = False) -> JobStatus:
        """The job's status. `once`: one request, no retries, for a caller that retries on
        its own schedule (the relay's polls) and wants to see each failure."""
        url = self._url(endpoint_id, "status", _check_id("job id", job_id))
        retries = 0 if once else self.retry.retries
        return await self._call("GET", url, JobStatus, limit=MAX_STATUS_BYTES, retries=retries)

    async def cancel(self, endpoint_id: str, job_id: str) -> JobStatus:
        url = self._url(endpoint_id, "cancel", _check_id("job id", job_id))
        return await self._call("POST", url, JobStatus, body=b"")

    async def health(self, endpoint_id: str) -> EndpointHealth:
        """Queue length and workers of an endpoint (one request: a caller choosing where to
        run wants a quick answer, not retries)."""
        return await self._call("GET", self._url(endpoint_id, "health"), EndpointHealth, retries=0)

    # ------------------------------------------------------------------ plumbing

    def _url(self, endpoint_id: str, *parts: str) -> str:
        return "/".join([self.base_url, _check_id("endpoint id", endpoint_id), *parts])

    def _scrub(self, text: str) -> str:
        return text.replace(self.__key, "<hidden>") if self.__key else text

    async def _call(
        self,
        method: str,
        url: str,
        model: type[Model],
        body: bytes | None = None,
        limit: int = MAX_ANSWER_BYTES,
        retries: int | None = None,
    ) -> Model:
        retries = self.retry.retries if retries is None else retries
        status, payload = await self._send_with_retries(method, url, body, limit, retries)
        try:
            return model.model_validate(payload)
        except ValidationError as error:
            raise RunpodServerError(status, unexpected_answer(status, payload, error)) from None

    async def _send_with_retries(
        self, method: str, url: str, body: bytes | None, limit: int, retries: int
    ) -> tuple[int, Any]:
        attempt = 0
        while True:
            try:
                status, retry_after, payload = await self._send(method, url, body, limit)
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                # A POST that may have reached RunPod is not repeated (no duplicate jobs).
                if method != "GET" or attempt >= retries:
                    if isinstance(error, asyncio.TimeoutError):
                        why = f"no answer from RunPod within {self._timeout.total:g} s"
                    else:
                        why = f"no answer from RunPod: {_network_text(error)}"
                    raise RunpodServerError(0, self._scrub(why)) from None
                status, retry_after, payload = 0, None, None
            else:
                if status not in RETRYABLE or attempt >= retries:
                    return status, self._raise_for(status, payload, retry_after)
                if retry_after is not None and retry_after > self.retry.max_retry_after:
                    return status, self._raise_for(status, payload, retry_after)
            await self._sleep(self.retry.backoff(attempt, retry_after))
            attempt += 1

    async def _send(
        self, method: str, url: str, body: bytes | None, limit: int
    ) -> tuple[int, float | None, Any]:
        headers = {"Authorization": f"Bearer {self.__key}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        async with self._session.request(
            method, url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
        ) as response:
            try:
                raw = await read_capped(response, limit)
            except AnswerTooLarge:
                raise RunpodAnswerTooLarge(response.status, limit) from None
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if len(raw) > PARSE_INLINE_BYTES:
                payload = await asyncio.to_thread(self._parse, raw)
            else:
                payload = self._parse(raw)
            return response.status, retry_after, payload

    def _parse(self, raw: bytes) -> Any:
        """The answer as JSON (or as text when it is not JSON), with the key scrubbed from it:
        a proxy or worker that echoes the key must not carry it into errors, logs or events.
        Decoded leniently: a proxy's non-UTF-8 error page must not raise here."""
        text = raw.decode("utf-8", errors="replace")
        if len(self.__key) >= MIN_SCRUBBED_KEY:
            text = self._scrub(text)
        try:
            return safe_json.loads(text) if text else None
        except ValueError:
            return text

    def _raise_for(self, status: int, payload: Any, retry_after: float | None = None) -> Any:
        """Return the payload of a 2xx answer, else raise the mapped error (the payload was
        scrubbed of the key when it was parsed)."""
        if 200 <= status < 300:
            return payload
        detail = _error_text(payload)
        if status in (401, 403):
            raise RunpodAuthError(status, "RunPod rejected the API key")
        if status == 404:
            raise RunpodNotFound(
                status, f"RunPod does not know this endpoint or job, or its result expired{detail}"
            )
        if status == 413:
            raise RunpodError(status, f"RunPod refused the request as too large{detail}")
        if status == 429:
            message = f"RunPod is rate limiting requests{detail}"
            raise RunpodRateLimited(status, message, retry_after)
        if status >= 500:
            message = f"RunPod failed with HTTP {status}{detail}"
            raise RunpodServerError(status, message, retry_after)
        if status == 400:
            raise RunpodBadRequest(status, f"RunPod rejected the request{detail}")
        raise RunpodError(status, f"RunPod answered HTTP {status}{detail}")


def _network_text(error: BaseException) -> str:
    """What went wrong on the wire, briefly (class name, plus aiohttp's reason if any)."""
    detail = str(error).strip().splitlines()[0][:150] if str(error).strip() else ""
    return f"{type(error).__name__} ({detail})" if detail else type(error).__name__


def unexpected_answer(status: int, payload: Any, error: ValidationError) -> str:
    """What RunPod answered, when it is not what its API promises: the start of a text
    answer (an HTML error page, say), else where the JSON differs."""
    if isinstance(payload, str) or payload is None:
        excerpt = " ".join(str(payload or "").split())[:120]
        return f"RunPod answered HTTP {status} with something other than JSON: {excerpt!r}"
    detail = describe(error, "<root>", with_value=True)
    return f"unexpected answer from RunPod (HTTP {status}): {detail}"


def _error_text(payload: Any) -> str:
    """A short `: reason` suffix from an error body (JSON `error`/`message` or plain text)."""
    if isinstance(payload, dict):
        payload = payload.get("error") or payload.get("message") or ""
    text = str(payload or "").strip().replace("\n", " ")
    return f": {text[:200]}" if text else ""
