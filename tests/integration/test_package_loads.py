"""The package inside a real ComfyUI: nodes, routes, web extension, clean log."""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from plugin_loader import load_plugin_package

from conftest import CUSTOM_NODE_FOLDER

pytestmark = pytest.mark.comfy

OUR_NODES = {"ParallelRunsProgressNote", "ParallelRunsSlowPassthrough"}


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def get_json(url: str) -> object:
    return json.loads(get(url)[2])


def test_our_nodes_are_in_object_info(comfy_server):
    info = get_json(f"{comfy_server.url}/object_info")
    assert set(info) >= OUR_NODES
    note = info["ParallelRunsProgressNote"]
    assert note["display_name"] == "Progress Note (Parallel Runs)"
    assert note["category"] == "parallel_runs"
    assert list(note["input"]["required"]) == ["image", "note"]
    assert note["output"] == ["IMAGE"]


@pytest.mark.parametrize("prefix", ["", "/api"])
def test_health_route_answers_on_both_prefixes(comfy_server, prefix):
    health = get_json(f"{comfy_server.url}{prefix}/parallel/health")
    assert health["name"] == "parallel-runs"
    assert health["version"] == load_plugin_package().__version__
    assert health["features"]["scoped_progress_text"] == {"enabled": True, "detail": "package"}
    # the real PromptServer passes every patch guard
    assert all(feature["enabled"] for feature in health["features"].values()), health


def test_extension_is_listed_and_served(comfy_server):
    listed = get_json(f"{comfy_server.url}/extensions")
    ours = f"/extensions/{CUSTOM_NODE_FOLDER}/parallel_runs.js"
    assert ours in listed
    status, content_type, body = get(comfy_server.url + ours)
    assert status == 200
    assert "javascript" in content_type
    assert b"registerExtension" in body and b'"parallel.runs"' in body


def test_log_has_no_failure_of_ours(comfy_server):
    log = comfy_server.log_text()
    assert f"[parallel-runs] {load_plugin_package().__version__} loaded" in log
    our_path = re.compile(rf"custom_nodes[/\\]{re.escape(CUSTOM_NODE_FOLDER)}")
    failed = [
        line for line in log.splitlines() if "IMPORT FAILED" in line and our_path.search(line)
    ]
    assert failed == []
    # A traceback "from us" names a file inside our package folder.
    frames = [
        line
        for line in log.splitlines()
        if line.strip().startswith("File ") and our_path.search(line)
    ]
    assert frames == []
    assert re.search(rf"\d+\.\d+ seconds: .*{re.escape(CUSTOM_NODE_FOLDER)}$", log, re.M)
