"""The package's version, from its one source: `[project] version` in pyproject.toml.

In a clone under ComfyUI's custom_nodes/ the file is beside this package; once installed with
pip it is gone, and the installed distribution's metadata (made from the same field) answers.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "parallel-runs"
_PROJECT_VERSION = re.compile(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', re.M | re.S)


PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def read_version(pyproject: Path = PYPROJECT) -> str:
    try:
        match = _PROJECT_VERSION.search(pyproject.read_text("utf-8"))
    except OSError:
        match = None
    if match:
        return match.group(1)
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
