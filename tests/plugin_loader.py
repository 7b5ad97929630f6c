"""The plugin package loaded the way ComfyUI loads a custom node: by path, under a name of its
own (`parallel_runs_node`). Imported by conftest before anything of ours, so that every test
imports the library as that sub-package only (one copy of each class)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "parallel_runs_node"


def load_plugin_package() -> ModuleType:
    """Import the repo root as a package the way ComfyUI does (by path, not by name)."""
    if PLUGIN_NAME in sys.modules:
        return sys.modules[PLUGIN_NAME]
    spec = importlib.util.spec_from_file_location(
        PLUGIN_NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PLUGIN_NAME] = module
    spec.loader.exec_module(module)
    return module


load_plugin_package()
