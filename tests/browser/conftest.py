"""Fixtures the browser tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from panel_harness import Server, post_json


@pytest.fixture(scope="module", params=["pinned", "newest"])
def server(request, comfy_server, comfy_server_newest) -> Iterator[Server]:
    """ComfyUI A (this frontend's session server) with the other session server named
    "other" in its settings (as a script would), so a prompt can run on another ComfyUI."""
    here, other = (
        (comfy_server, comfy_server_newest)
        if request.param == "pinned"
        else (comfy_server_newest, comfy_server)
    )
    servers = f"{here.url}/parallel/executors/comfyui"
    post_json(servers, {"name": "other", "url": other.url})
    try:
        yield Server(request.param, here.url)
    finally:
        post_json(servers, {"name": "other", "url": None})
