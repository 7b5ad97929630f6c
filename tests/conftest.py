"""Shared test harness: the plugin package loaded as ComfyUI loads it, real ComfyUI servers,
and headless Chromium. Servers are session-scoped so the suite pays their start-up once."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_launch import CHROMIUM, CHROMIUM_ARGS
from plugin_loader import REPO  # before ours: it loads the plugin as parallel_runs_node

from parallel_runs_node.parallel_runs.client.process import ComfyProcess

ARTIFACTS = REPO / "test-artifacts"
# A folder name that is no Python identifier, as ComfyUI-Manager would create it.
CUSTOM_NODE_FOLDER = "parallel-runs"


def find_comfyui() -> Path:
    """Same order as scripts/setup: COMFYUI_PATH, an enclosing ComfyUI, the provisioned copy."""
    candidates = [os.environ.get("COMFYUI_PATH")]
    if REPO.parent.name == "custom_nodes":
        candidates.append(str(REPO.parent.parent))
    candidates.append(str(REPO / ".deps" / "ComfyUI"))
    for candidate in filter(None, candidates):
        if (Path(candidate) / "main.py").is_file():
            return Path(candidate)
    pytest.exit("no ComfyUI found: run scripts/setup first", returncode=2)


def newest_frontend_root() -> Path:
    root = REPO / ".deps" / "frontend-newest" / "comfyui_frontend_package" / "static"
    if not (root / "index.html").is_file():
        pytest.exit("newest frontend missing: run scripts/setup first", returncode=2)
    return root


def make_base_directory(base: Path) -> Path:
    """A throw-away ComfyUI base directory with this package linked into custom_nodes/."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / CUSTOM_NODE_FOLDER).symlink_to(REPO, target_is_directory=True)
    for sub in ("input", "output", "temp", "user"):
        (base / sub).mkdir(exist_ok=True)
    return base


def start_comfy(base: Path, *extra_args: str) -> ComfyProcess:
    server = ComfyProcess(
        comfy_dir=find_comfyui(),
        base_directory=make_base_directory(base),
        python=sys.executable,
        extra_args=extra_args,
        log_path=base / "comfyui.log",
    )
    return server.start(timeout=180)


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyProcess]:
    """A real ComfyUI (pinned frontend) with this package in custom_nodes/."""
    server = start_comfy(tmp_path_factory.mktemp("comfy-pinned"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def comfy_server_newest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyProcess]:
    """The same, serving the newest frontend release instead of the pinned one."""
    server = start_comfy(
        tmp_path_factory.mktemp("comfy-newest"), "--front-end-root", str(newest_frontend_root())
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (which cannot download a browser here)."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.exit(f"{CHROMIUM} missing: run scripts/setup first", returncode=2)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last: sync Playwright keeps an event loop running on the main
    thread for as long as the browser is open, which asyncio-based tests cannot share."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
