"""Parallel Runs connector: an async client for ComfyUI servers, usable outside ComfyUI.

`Connector` runs and follows prompts (API prompts or UI workflows) over one websocket;
`ComfyProcess` starts a server, `AttachedServer` uses one that runs already. Importing this
package pulls in aiohttp and pydantic only, never ComfyUI or the RunPod SDK.
"""

from .client.connector import Connector, PromptHandle
from .client.errors import (
    ConnectorError,
    PromptFailed,
    PromptInterrupted,
    PromptRejected,
    PromptTimeout,
    ServerGone,
    ServerUnavailable,
)
from .client.process import AttachedServer, ComfyProcess, ComfyStartError, ServerState
from .client.prompt_run import RunResult, RunStatus
from .version import read_version

__version__ = read_version()

__all__ = [
    "AttachedServer",
    "ComfyProcess",
    "ComfyStartError",
    "Connector",
    "ConnectorError",
    "PromptFailed",
    "PromptHandle",
    "PromptInterrupted",
    "PromptRejected",
    "PromptTimeout",
    "RunResult",
    "RunStatus",
    "ServerGone",
    "ServerState",
    "ServerUnavailable",
    "__version__",
]
