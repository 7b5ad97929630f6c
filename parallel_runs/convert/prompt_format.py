"""Tell an API prompt from a UI-format workflow, and turn either into an API prompt.

Users hand over whatever ComfyUI saved: "Save" writes the UI workflow (nodes + links),
"Export (API)" the prompt (id -> {class_type, inputs}); some tools wrap it as {"prompt": ...}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Format = Literal["api", "ui"]


class UnknownFormat(ValueError):
    """Neither an API prompt nor a UI workflow."""


def detect_format(document: Any) -> Format:
    if isinstance(document, Mapping):
        if isinstance(document.get("nodes"), list) and "links" in document:
            return "ui"
        if "prompt" in document and isinstance(document["prompt"], Mapping):
            return detect_format(document["prompt"])
        if document and all(
            isinstance(node, Mapping) and "class_type" in node for node in document.values()
        ):
            return "api"
    raise UnknownFormat(
        "neither an API prompt ({id: {class_type, inputs}}) nor a UI workflow ({nodes, links})"
    )


def api_prompt(document: Mapping[str, Any]) -> dict[str, Any]:
    """The API prompt inside an API document (bare or wrapped as {"prompt": ...})."""
    if "prompt" in document and isinstance(document["prompt"], Mapping):
        return api_prompt(document["prompt"])
    return {str(node_id): dict(node) for node_id, node in document.items()}


def to_prompt(document: Mapping[str, Any], object_info: Mapping[str, Any] | None) -> dict:
    """An API prompt from either format; a UI workflow needs the server's `/object_info`."""
    if detect_format(document) == "api":
        return api_prompt(document)
    if object_info is None:
        raise ValueError("converting a UI workflow needs the server's /object_info")
    from .to_prompt import workflow_to_prompt

    return workflow_to_prompt(dict(document), dict(object_info))
