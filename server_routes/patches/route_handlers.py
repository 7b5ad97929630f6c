"""Wrap the handler of one of ComfyUI's own routes before its router is built.

ComfyUI registers its routes on `PromptServer.instance.routes` (an aiohttp `RouteTableDef`)
when the server is created, and builds the router from that table after custom nodes are
loaded. A route registered again under the same path would never be reached (the first one
wins), so to change what a route answers we replace its entry in the table with one whose
handler wraps ComfyUI's. Nothing is replaced unless every route asked for is found once, with
a coroutine handler that takes the request: otherwise PatchRefused says what differs."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .guard import PatchRefused

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
WRAPPED = "__parallel_runs_wraps__"  # set on a wrapper: the handler it wraps


@dataclass(frozen=True)
class RouteWrap:
    """Wrap the `method` route at the first of `paths` the table has (ComfyUI spells some
    paths with their /api prefix) with `wrap(handler)`; an `optional` one may be missing."""

    method: str
    paths: tuple[str, ...]
    wrap: Callable[[Handler], Handler]
    optional: bool = False


def _items(table: Any) -> list[Any]:
    items = getattr(table, "_items", None)
    if not isinstance(table, web.RouteTableDef) or not isinstance(items, list):
        raise PatchRefused("PromptServer.routes is not an aiohttp RouteTableDef")
    return items


def find_route(table: web.RouteTableDef, method: str, paths: Sequence[str]) -> int | None:
    """The index of the one RouteDef for `method` at the first of `paths` that has one;
    None when no path has one; PatchRefused when a path has several."""
    items = _items(table)
    for path in paths:
        found = [
            index
            for index, route in enumerate(items)
            if isinstance(route, web.RouteDef) and route.method == method and route.path == path
        ]
        if len(found) > 1:
            raise PatchRefused(f"ComfyUI registers {method} {path} {len(found)} times")
        if found:
            return found[0]
    return None


def _check_handler(route: web.RouteDef) -> None:
    handler = route.handler
    if not inspect.iscoroutinefunction(handler):
        raise PatchRefused(f"ComfyUI's {route.method} {route.path} handler is not a coroutine")
    try:
        parameters = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        raise PatchRefused(
            f"ComfyUI's {route.method} {route.path} handler has no signature"
        ) from None
    required = [p for p in parameters if p.default is inspect.Parameter.empty]
    if len(parameters) == 0 or len(required) > 1:
        raise PatchRefused(
            f"ComfyUI's {route.method} {route.path} handler takes "
            f"({', '.join(p.name for p in parameters)}), not the request alone"
        )


def wrap_routes(table: web.RouteTableDef, wraps: Iterable[RouteWrap]) -> list[str]:
    """Wrap every route of `wraps` (all or none); returns "METHOD path" of each wrapped.
    PatchRefused when one is missing or not as expected; a route already wrapped by us is
    left as it is."""
    items = _items(table)
    planned: list[tuple[int, RouteWrap]] = []
    for wanted in wraps:
        index = find_route(table, wanted.method, wanted.paths)
        if index is None and wanted.optional:
            continue
        if index is None:
            raise PatchRefused(f"this ComfyUI has no {wanted.method} {wanted.paths[0]} route")
        _check_handler(items[index])
        planned.append((index, wanted))
    done = []
    for index, wanted in planned:
        route = items[index]
        if getattr(route.handler, WRAPPED, None) is None:
            handler = wanted.wrap(route.handler)
            setattr(handler, WRAPPED, route.handler)
            items[index] = web.RouteDef(route.method, route.path, handler, route.kwargs)
        done.append(f"{route.method} {route.path}")
    return done
