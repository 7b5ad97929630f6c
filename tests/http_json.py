"""JSON over HTTP for tests that set up or tidy a server as a script would."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def post_json(url: str, body: Any) -> Any:
    """POST `body` as JSON; the answer's JSON (urllib raises on an error status)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())
