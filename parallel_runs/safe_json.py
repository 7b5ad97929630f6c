"""JSON from someone else (a request body, a remote server's answer) parsed with a depth
limit: Python's parser raises RecursionError on deep nesting, which is no ValueError and so
slips past the usual `except ValueError`; here it becomes one, as does a merely deep document."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 100  # a UI workflow with nested subgraphs stays well under 30


class JsonTooDeep(ValueError):
    """The document nests deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"JSON nested deeper than {limit} levels")
        self.limit = limit


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and objects in `value` nest deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads(text: str | bytes, limit: int = MAX_DEPTH) -> Any:
    """`json.loads`, raising ValueError (JsonTooDeep) for documents nested beyond `limit`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonTooDeep(limit) from None
    if too_deep(value, limit):
        raise JsonTooDeep(limit)
    return value
