"""Headless Chromium opens the real ComfyUI page and our extension announces itself."""

from __future__ import annotations

import pytest
from plugin_loader import load_plugin_package

from conftest import CUSTOM_NODE_FOLDER

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("which", ["pinned", "newest"])
def test_extension_module_loads_in_page(request, chromium, artifacts_dir, which):
    server = request.getfixturevalue("comfy_server" if which == "pinned" else "comfy_server_newest")
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    # The stack names the module that threw, so an error of ours is caught whatever it says.
    page.on("pageerror", lambda error: errors.append(f"{error.message}\n{error.stack or ''}"))
    try:
        page.goto(server.url, wait_until="domcontentloaded")
        page.wait_for_function(
            "() => document.documentElement.dataset.parallelRuns !== undefined", timeout=60_000
        )
        version = page.evaluate("() => document.documentElement.dataset.parallelRuns")
        base = page.evaluate("() => document.documentElement.dataset.parallelRunsBase")
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts_dir / f"extension-loaded-{which}.png"))
    finally:
        page.close()
    assert version == load_plugin_package().__version__
    assert base == f"{server.url}/extensions/{CUSTOM_NODE_FOLDER}/"
    ours = f"/extensions/{CUSTOM_NODE_FOLDER}/"
    assert [e for e in errors if ours in e or "parallel" in e.lower()] == []
