"""Parallel Runs: the ComfyUI entry point (nodes, web extension, routes and patches).

Importable without ComfyUI, so tooling can load it; the server part installs only when a
PromptServer is running. Nothing is installed or downloaded at import time.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .parallel_runs import __version__

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY", "__version__"]


def _prompt_server():  # -> PromptServer | None
    try:
        from server import PromptServer
    except ImportError:
        return None
    return getattr(PromptServer, "instance", None)


def _server_feature_flags() -> dict:
    try:
        from comfy_api.feature_flags import SERVER_FEATURE_FLAGS
    except ImportError:  # a ComfyUI older than feature-flag negotiation
        return {}
    return SERVER_FEATURE_FLAGS


if (_server := _prompt_server()) is not None:
    from .server_routes import install

    install(_server, __version__, _server_feature_flags())
