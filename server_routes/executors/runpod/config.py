"""Offload settings: which RunPod endpoint, where RunPod lives, and the API key.

The key comes from `RUNPOD_API_KEY` or from a 0600 file in a "system user" folder of ComfyUI's
user directory (`user/__parallel_runs/`, which ComfyUI never serves over HTTP); it is
write-only through the routes (reads say whether it is set and its last four characters).
The base URL is server-side configuration only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..state_files import write_private

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
KEY_ENV = "RUNPOD_API_KEY"
BASE_URL_ENV = "RUNPOD_ENDPOINT_BASE_URL"
ENDPOINT_ENV = "RUNPOD_ENDPOINT_ID"
ALLOW_REMOTE_ENV = "PARALLEL_RUNS_ALLOW_REMOTE_OFFLOAD"
ALLOWED_HOSTS_ENV = "PARALLEL_RUNS_ALLOWED_HOSTS"
TIMEOUT_ENV = "PARALLEL_RUNS_REMOTE_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
ENDPOINT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_TRUE = {"1", "true", "yes", "on"}


class EnvKeyLocked(RuntimeError):
    """The key comes from the environment, which the routes must not override."""


def is_loopback_host(host: str | None) -> bool:
    """True for "localhost" and loopback address literals (IPv4-mapped IPv6 included)."""
    name = (host or "").strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a host name we cannot judge: treat it as reachable from outside
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_ip_address(host: str | None) -> bool:
    try:
        ipaddress.ip_address((host or "").strip().strip("[]"))
    except ValueError:
        return False
    return True


def is_loopback_listen(listen: str) -> bool:
    """True when every address ComfyUI listens on (`--listen`, comma-separated) is loopback."""
    return all(is_loopback_host(raw) for raw in listen.split(","))


class StoredConfig(BaseModel):
    """The non-secret part, persisted as JSON next to the key file."""

    model_config = ConfigDict(extra="ignore")

    endpoint_id: str | None = Field(default=None, pattern=ENDPOINT_ID_PATTERN)


class ConfigView(BaseModel):
    """What GET /parallel/offload/config answers: never the key itself."""

    model_config = ConfigDict(frozen=True)

    endpoint_id: str | None
    base_url_is_default: bool
    api_key_set: bool
    api_key_last4: str | None
    api_key_source: str | None  # "env" | "file" | None
    allowed: bool
    allowed_detail: str


class OffloadConfig:
    """Reads and writes the offload settings.

    The stored endpoint id and key file are read once and cached (requests must not touch the
    disk); the setters refresh the cache. Setters write with fsync: run them off the loop."""

    def __init__(
        self, state_dir: Path, env: Mapping[str, str] | None = None, listen: str = "127.0.0.1"
    ) -> None:
        self._env = dict(os.environ if env is None else env)
        self.folder = Path(state_dir)
        self.key_path = self.folder / "runpod_api_key"
        self.config_path = self.folder / "offload.json"
        self.listen = listen
        self._stored: StoredConfig | None = None
        self._file_key: tuple[str | None] | None = None  # (key,) once read

    # -- where RunPod is
    @property
    def base_url(self) -> str:
        return (self._env.get(BASE_URL_ENV) or "").strip().rstrip("/") or DEFAULT_BASE_URL

    @property
    def allow_remote(self) -> bool:
        """The user opted in to offload (and its settings) being used from other machines."""
        return (self._env.get(ALLOW_REMOTE_ENV) or "").strip().lower() in _TRUE

    @property
    def remote_timeout(self) -> float:
        """Seconds one request to the remote side may take (1 to 600; 30 unless set)."""
        try:
            seconds = float(self._env.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT)
        except ValueError:
            return DEFAULT_TIMEOUT
        return DEFAULT_TIMEOUT if math.isnan(seconds) else min(max(seconds, 1.0), 600.0)

    @property
    def allowed_hosts(self) -> frozenset[str]:
        """Host names (besides IP addresses) that other machines may address ComfyUI by."""
        raw = self._env.get(ALLOWED_HOSTS_ENV) or ""
        return frozenset(name.strip().lower() for name in raw.split(",") if name.strip())

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request's Host names this server rather than someone else's domain."""
        if is_loopback_host(host):
            return True
        if not self.allow_remote or not host:
            return False
        return is_ip_address(host) or host.lower() in self.allowed_hosts

    def host_rule(self) -> str:
        """`host_allowed` in words, for the error a refused request gets."""
        if not self.allow_remote:
            return (
                f"localhost or 127.0.0.1 (set {ALLOW_REMOTE_ENV}=1 to use it from other machines)"
            )
        return (
            "an IP address, localhost, or a name listed in "
            f"{ALLOWED_HOSTS_ENV} (a comma-separated list in ComfyUI's environment)"
        )

    @property
    def allowed(self) -> bool:
        """Offload sends prompts and files out with our key: loopback-only unless opted in."""
        return is_loopback_listen(self.listen) or self.allow_remote

    def allowed_detail(self) -> str:
        if is_loopback_listen(self.listen):
            return "ComfyUI listens on loopback only"
        if self.allowed:
            return f"ComfyUI listens on {self.listen}; allowed by {ALLOW_REMOTE_ENV}=1"
        return (
            f"offload is off because ComfyUI listens on {self.listen} (reachable from other "
            f"machines, which could then spend your RunPod credit); start ComfyUI with "
            f"--listen 127.0.0.1 or set {ALLOW_REMOTE_ENV}=1 in its environment"
        )

    # -- the endpoint
    def stored(self) -> StoredConfig:
        if self._stored is None:
            try:
                raw = json.loads(self.config_path.read_text("utf-8"))
                self._stored = StoredConfig.model_validate(raw)
            except (OSError, ValueError):
                self._stored = StoredConfig()
        return self._stored

    @property
    def endpoint_id(self) -> str | None:
        stored = self.stored().endpoint_id
        env = (self._env.get(ENDPOINT_ENV) or "").strip()
        if stored:
            return stored
        return env if env and re.match(ENDPOINT_ID_PATTERN, env) else None

    def set_endpoint_id(self, endpoint_id: str | None) -> None:
        config = StoredConfig(endpoint_id=endpoint_id or None)
        write_private(self.config_path, config.model_dump_json())
        self._stored = config

    # -- the key
    def api_key_source(self) -> str | None:
        if (self._env.get(KEY_ENV) or "").strip():
            return "env"
        return "file" if self._read_key_file() else None

    def api_key(self) -> str | None:
        """The key to put in the Authorization header; None when none is configured."""
        return (self._env.get(KEY_ENV) or "").strip() or self._read_key_file()

    def _read_key_file(self) -> str | None:
        if self._file_key is None:
            try:
                self._file_key = (self.key_path.read_text("utf-8").strip() or None,)
            except OSError:
                self._file_key = (None,)
        return self._file_key[0]

    def set_api_key(self, key: str | None) -> None:
        """Store (or with None/"" delete) the key file; refused while the env var is set."""
        if (self._env.get(KEY_ENV) or "").strip():
            raise EnvKeyLocked(
                f"the RunPod API key comes from {KEY_ENV} in ComfyUI's environment, which "
                "takes precedence; unset it there to manage the key from the UI"
            )
        if key:
            write_private(self.key_path, key.strip())
        else:
            with contextlib.suppress(FileNotFoundError):
                self.key_path.unlink()
        self._file_key = ((key or "").strip() or None,)

    def view(self) -> ConfigView:
        key = self.api_key()
        return ConfigView(
            endpoint_id=self.endpoint_id,
            base_url_is_default=self.base_url == DEFAULT_BASE_URL,
            api_key_set=key is not None,
            api_key_last4=key[-4:] if key and len(key) >= 12 else None,
            api_key_source=self.api_key_source(),
            allowed=self.allowed,
            allowed_detail=self.allowed_detail(),
        )
