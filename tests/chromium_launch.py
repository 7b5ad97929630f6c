"""How the tests and benchmarks start Debian's Chromium under Playwright (which cannot
download a browser here). Without the background-networking flags Chromium keeps dialling
out, and this machine refuses every such connection."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("PARALLEL_RUNS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
