"""Which connected websocket clients a message reaches, and what each of them can decode.

ComfyUI sends to one client id, or to every client when none is given; each client announced
its feature flags when it connected. Frames whose layout depends on those flags (progress text,
previews) are written per recipient from this."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def connected_clients(server: Any, sid: str | None) -> dict[str, Mapping[str, Any]]:
    """The clients a message for `sid` reaches (`sid` alone if connected, everyone when None),
    each with the feature flags it announced."""
    sockets = getattr(server, "sockets", {})
    metadata = getattr(server, "sockets_metadata", {})
    if sid is not None:  # the common case, on every progress frame: no list to build
        return {sid: _flags(metadata, sid)} if sid in sockets else {}
    return {target: _flags(metadata, target) for target in list(sockets)}


def _flags(metadata: Mapping[str, Any], sid: str) -> Mapping[str, Any]:
    """A client's flags as announced; anything but an object (a client may send a string,
    a list or null as its `feature_flags`) counts as none."""
    entry = metadata.get(sid)
    flags = entry.get("feature_flags") if isinstance(entry, Mapping) else None
    return flags if isinstance(flags, Mapping) else {}
