"""The named ComfyUI servers prompts may run on.

From `PARALLEL_RUNS_COMFYUI_SERVERS` (`"gpu2=http://127.0.0.1:8189,studio=http://10.0.0.5:8188"`)
and from the panel (stored in the package's private folder). A server behind a proxy may need
an auth header; it is stored apart, owner-only, and never shown back (like the RunPod key).
The environment names win over stored ones of the same name.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ..records import EXECUTOR_NAME
from ..state_files import write_private

log = logging.getLogger(__name__)

SERVERS_ENV = "PARALLEL_RUNS_COMFYUI_SERVERS"
NAME_PATTERN = rf"^{EXECUTOR_NAME}$"


class BadServer(ValueError):
    """A server entry that cannot be used: says which and why."""


def checked_url(url: str) -> str:
    """An http(s) URL with a host and nothing after the path (no query, no credentials)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise BadServer("the server's URL does not parse") from None
    if parts.username or parts.password:  # never echoed: it holds a secret
        raise BadServer("put credentials in the server's auth header, not in its URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadServer(f"{url[:100]!r} is not an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise BadServer(f"{url[:100]!r}: give the server's address only (no ? or #)")
    return url.strip().rstrip("/")


def parse_servers(raw: str) -> dict[str, str]:
    """`name=url,...`; entries that are not usable are logged and left out."""
    servers: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        name, _, url = (text.strip() for text in entry.partition("="))
        try:
            if not re.match(NAME_PATTERN, name):
                raise BadServer(f"{name[:64]!r} is not a server name (letters, digits, _.-)")
            servers[name] = checked_url(url)
        except BadServer as exc:
            log.warning("[parallel-runs] %s: entry left out: %s", SERVERS_ENV, exc)
    return servers


class StoredServers(BaseModel):
    model_config = ConfigDict(extra="ignore")

    servers: dict[str, str] = Field(default_factory=dict)


class ServerView(BaseModel):
    """What GET answers of one server: never its auth header."""

    name: str
    url: str
    source: str  # "env" | "panel"
    auth_set: bool


class ComfyServers:
    """Reads and writes the named servers. Cached after the first read (requests must not
    touch the disk); writes fsync: call them off the loop."""

    def __init__(self, state_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self._env = parse_servers(dict(os.environ if env is None else env).get(SERVERS_ENV, ""))
        self.path = Path(state_dir) / "comfyui_servers.json"
        self.auth_path = Path(state_dir) / "comfyui_auth.json"
        self._stored: dict[str, str] | None = None
        self._auth: dict[str, str] | None = None

    def _read(self, path: Path) -> dict[str, str]:
        try:
            return StoredServers.model_validate(json.loads(path.read_text("utf-8"))).servers
        except (OSError, ValueError):
            return {}

    def stored(self) -> dict[str, str]:
        if self._stored is None:
            self._stored = self._read(self.path)
        return self._stored

    def all(self) -> dict[str, str]:
        """name -> URL, the environment's entries over the stored ones."""
        return {**self.stored(), **self._env}

    def url(self, name: str) -> str | None:
        return self.all().get(name)

    def auth_header(self, name: str) -> str | None:
        if self._auth is None:
            self._auth = self._read(self.auth_path)
        return self._auth.get(name)

    def set_server(self, name: str, url: str | None, auth: str | None = None) -> None:
        """Add, change (url) or with `url=None` remove a stored server; `auth` "" clears its
        header, None keeps it."""
        if name in self._env:
            raise BadServer(f"server {name!r} comes from {SERVERS_ENV}; change it there")
        servers = dict(self.stored())
        headers = dict(self._auth if self._auth is not None else self._read(self.auth_path))
        if url is None:
            servers.pop(name, None)
            headers.pop(name, None)
        else:
            servers[name] = checked_url(url)
        if auth is not None and url is not None:
            if auth:
                headers[name] = auth
            else:
                headers.pop(name, None)
        write_private(self.path, StoredServers(servers=servers).model_dump_json())
        write_private(self.auth_path, StoredServers(servers=headers).model_dump_json())
        self._stored, self._auth = servers, headers

    def view(self) -> list[ServerView]:
        env = set(self._env)
        return [
            ServerView(
                name=name,
                url=url,
                source="env" if name in env else "panel",
                auth_set=self.auth_header(name) is not None,
            )
            for name, url in sorted(self.all().items())
        ]
