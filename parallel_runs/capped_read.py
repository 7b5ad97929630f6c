"""Reading an HTTP answer from a machine we do not control without holding more than we mean to:
the declared length is checked first, then the body is read in chunks up to the limit."""

from __future__ import annotations

import aiohttp

CHUNK = 64 * 1024


class AnswerTooLarge(ValueError):
    """The answer is longer than `limit` bytes; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, never more than `limit` bytes (AnswerTooLarge beyond)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise AnswerTooLarge(limit)
    body = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(limit)
    return bytes(body)
