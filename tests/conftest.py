"""Shared test harness: the plugin package loaded as ComfyUI loads it, real ComfyUI servers,
and headless Chromium. Servers are session-scoped so the suite pays their start-up once, and
start in the background as the session begins."""

from __future__ import annotations

import compileall
import functools
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from chromium_launch import CHROMIUM, CHROMIUM_ARGS
from early_servers import EarlyStarts, planned_keys
from http_json import post_json
from plugin_loader import REPO  # before ours: it loads the plugin as parallel_runs_node
from shards import SecondsRecorder, make_scheduler, own_share, this_worker

from parallel_runs_node.parallel_runs.client.process import ComfyProcess

ARTIFACTS = REPO / "test-artifacts"
# A folder name that is no Python identifier, as ComfyUI-Manager would create it.
CUSTOM_NODE_FOLDER = "parallel-runs"


def locate_comfyui() -> Path | None:
    """Same order as scripts/setup: COMFYUI_PATH, an enclosing ComfyUI, the provisioned copy."""
    candidates = [os.environ.get("COMFYUI_PATH")]
    if REPO.parent.name == "custom_nodes":
        candidates.append(str(REPO.parent.parent))
    candidates.append(str(REPO / ".deps" / "ComfyUI"))
    for candidate in filter(None, candidates):
        if (Path(candidate) / "main.py").is_file():
            return Path(candidate)
    return None


def find_comfyui() -> Path:
    comfy = locate_comfyui()
    if comfy is None:
        pytest.exit("no ComfyUI found: run scripts/setup first", returncode=2)
    return comfy


# Folders of a ComfyUI that hold no code of its own (or code it does not import at start).
NOT_COMFY_CODE = {"custom_nodes", "models", "input", "output", "temp", "user", "tests",
                  "tests-unit", "script_examples"}  # fmt: skip


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile ComfyUI's own modules once (a no-op while they are current). Where Python may
    not write bytecode (PYTHONDONTWRITEBYTECODE, as on this machine), every server start would
    compile them again: about 1 s of each of the suite's many ComfyUI start-ups."""
    comfy = locate_comfyui()
    if comfy is None or this_worker() is not None:  # xdist's controller has done it
        return
    for entry in sorted(comfy.iterdir()):  # best effort: a read-only ComfyUI is fine
        if entry.name.startswith(".") or entry.name in NOT_COMFY_CODE:
            continue
        if entry.is_dir():
            compileall.compile_dir(entry, quiet=2)
        elif entry.suffix == ".py":
            compileall.compile_file(entry, quiet=2)


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


class Starting:
    """A ComfyUI start running in a thread; `server()` waits for it (and raises its error)."""

    def __init__(self, start: Callable[[], ComfyProcess], name: str) -> None:
        self._start = start
        self._server: ComfyProcess | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"start-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._server = self._start()
        except BaseException as error:  # re-raised in the test that needs the server
            self._error = error

    def server(self) -> ComfyProcess:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._server is not None
        return self._server

    def stop(self) -> None:
        self._thread.join()
        if self._server is not None:
            self._server.stop()


# The session's servers (fixture name: base directory name, extra arguments).
SESSION_SERVERS: dict[str, tuple[str, Callable[[], tuple[str, ...]]]] = {
    "comfy_server": ("comfy-pinned", lambda: ()),
    "comfy_server_newest": (
        "comfy-newest",
        lambda: ("--front-end-root", str(newest_frontend_root())),
    ),
}


def start_session_server(name: str, factory: pytest.TempPathFactory) -> Starting:
    folder, args = SESSION_SERVERS[name]
    base, extra_args = factory.mktemp(folder), args()  # here, not in the thread
    return Starting(lambda: start_comfy(base, *extra_args), name)


def wants(item: pytest.Item, fixture: str) -> bool:
    """Whether a collected test uses a session server: as an argument, or by name through
    `request.getfixturevalue` (which the fixture list cannot show)."""
    if fixture in getattr(item, "fixturenames", ()):
        return True
    path = getattr(item, "path", None)
    if path is None or path.suffix != ".py":
        return False
    return re.search(rf"\b{fixture}\b", _source(path)) is not None


@functools.cache
def _source(path: Path) -> str:
    return path.read_text(errors="replace")


@pytest.fixture(scope="session")
def own_items(request: pytest.FixtureRequest) -> list[pytest.Item]:
    """The tests this process runs: all collected, or its worker's share under `-n`."""
    return own_share(request.session.items, this_worker())


@pytest.fixture(scope="session", autouse=True)
def session_servers(
    own_items: list[pytest.Item], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Starting]]:
    """Start, in the background and at once, each session server that a test of this process
    will use: their start-ups (seconds each) overlap with each other and with the tests that come
    first, instead of being waited for one by one. Stopped when the session ends."""
    starting = {
        name: start_session_server(name, tmp_path_factory)
        for name in SESSION_SERVERS
        if any(wants(item, name) for item in own_items)
    }
    yield starting
    for each in starting.values():
        each.stop()


def session_server(
    name: str, starting: dict[str, Starting], factory: pytest.TempPathFactory
) -> ComfyProcess:
    if name not in starting:  # not foreseen from the collected tests: start it now
        starting[name] = start_session_server(name, factory)
    return starting[name].server()


@pytest.fixture(scope="session", autouse=True)
def early_starts(
    own_items: list[pytest.Item],
    session_servers: dict[str, Starting],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EarlyStarts]:
    """The modules' own servers (`early_fixture`), started in the background ahead of their
    tests, after the session's; see tests/early_servers.py."""
    starts = EarlyStarts(
        planned_keys(own_items),
        tmp_path_factory.mktemp,
        lambda name: session_server(name, session_servers, tmp_path_factory),
    )
    yield starts
    starts.close()


@pytest.fixture(scope="session")
def comfy_server(session_servers, tmp_path_factory: pytest.TempPathFactory) -> ComfyProcess:
    """A real ComfyUI (pinned frontend) with this package in custom_nodes/."""
    return session_server("comfy_server", session_servers, tmp_path_factory)


@pytest.fixture(scope="session")
def comfy_server_newest(session_servers, tmp_path_factory: pytest.TempPathFactory) -> ComfyProcess:
    """The same, serving the newest frontend release instead of the pinned one."""
    return session_server("comfy_server_newest", session_servers, tmp_path_factory)


@dataclass
class PairedServer:
    """A ComfyUI the browser tests drive: `which` frontend it serves ("pinned" or "newest")."""

    which: str
    url: str


@pytest.fixture(scope="module", params=["pinned", "newest"])
def paired_server(request, comfy_server, comfy_server_newest) -> Iterator[PairedServer]:
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
        yield PairedServer(request.param, here.url)
    finally:
        post_json(servers, {"name": "other", "url": None})


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-seconds",
        action="store_true",
        help="write each test file's seconds to tests/seconds.json (how `-n` splits the suite)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("store_seconds") and this_worker() is None:
        config.pluginmanager.register(SecondsRecorder(config.rootpath), "parallel-runs-seconds")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`pytest -n N`: each worker runs a fixed share of the suite (tests/shards.py)."""
    return make_scheduler(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests first, browser tests last. The unit tests need no server: the session's
    servers, and the first modules' own, start in the background meanwhile. Browser tests
    last: sync Playwright keeps an event loop running on the main thread for as long as the
    browser is open, which asyncio-based tests cannot share."""

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("browser") is not None:
            return 2
        path = getattr(item, "path", None)
        return 0 if path is not None and "unit" in path.parts else 1

    items.sort(key=rank)
