"""Named ComfyUI servers: read from the environment and the panel, written only from this
machine, their auth headers never shown back."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from offload_harness import Harness, build_app

from parallel_runs_node.server_routes.executors.comfyui.servers import (
    BadServer,
    ComfyServers,
    parse_servers,
)

ENV = "PARALLEL_RUNS_COMFYUI_SERVERS"


def test_servers_from_the_environment_skip_what_cannot_be_used(caplog):
    raw = (
        " gpu2 = http://127.0.0.1:8189/ ,studio=https://10.0.0.5:8188,bad name=http://x,"
        "ftp=ftp://host,creds=http://u:p@host,=http://nameless, ,query=http://h/?a=1"
    )
    with caplog.at_level(logging.WARNING):
        servers = parse_servers(raw)
    assert servers == {"gpu2": "http://127.0.0.1:8189", "studio": "https://10.0.0.5:8188"}
    assert len(caplog.records) == 5
    assert "u:p" not in caplog.text  # a URL with credentials is refused without echoing them


def test_stored_servers_and_their_auth_headers(tmp_path):
    servers = ComfyServers(tmp_path, env={ENV: "gpu2=http://127.0.0.1:8189"})
    servers.set_server("studio", "http://10.0.0.5:8188", "Bearer secret-token-1")
    again = ComfyServers(tmp_path, env={ENV: "gpu2=http://127.0.0.1:8189"})
    assert again.all() == {"gpu2": "http://127.0.0.1:8189", "studio": "http://10.0.0.5:8188"}
    assert again.auth_header("studio") == "Bearer secret-token-1"
    views = {v.name: v.model_dump() for v in again.view()}
    assert views["studio"] == {
        "name": "studio",
        "url": "http://10.0.0.5:8188",
        "source": "panel",
        "auth_set": True,
    }
    assert views["gpu2"]["source"] == "env" and "secret" not in str(views)
    for path in (again.path, again.auth_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again.set_server("studio", "http://10.0.0.6:8188")  # auth left out: kept
    assert again.auth_header("studio") == "Bearer secret-token-1"
    again.set_server("studio", "http://10.0.0.6:8188", "")  # "": cleared
    assert again.auth_header("studio") is None
    again.set_server("studio", None)
    assert ComfyServers(tmp_path, env={}).all() == {}
    with pytest.raises(BadServer, match="comes from"):
        again.set_server("gpu2", "http://127.0.0.1:9999")
    with pytest.raises(BadServer, match="not an http"):
        again.set_server("new", "file:///etc/passwd")


@pytest.fixture
async def harness(tmp_path, aiohttp_client) -> Harness:
    app, offload, server = build_app(tmp_path, {ENV: "gpu2=http://127.0.0.1:8189"})
    return Harness(await aiohttp_client(app), offload, server, tmp_path)


async def test_servers_are_set_from_this_machine_and_listed_without_secrets(harness):
    body = {"name": "studio", "url": "http://10.0.0.5:8188", "auth": "Basic c2VjcmV0"}
    status, answer = await harness.post("/parallel/executors/comfyui", body)
    assert status == 200, answer
    assert {s["name"]: s["auth_set"] for s in answer["servers"]} == {"gpu2": False, "studio": True}
    listed = await (await harness.client.get("/parallel/executors/comfyui")).text()
    assert "c2VjcmV0" not in listed and "studio" in listed


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"name": "gpu2", "url": "http://127.0.0.1:1"}, 400, "invalid_server"),
        ({"name": "x", "url": "javascript:alert(1)"}, 400, "invalid_server"),
        ({"name": "../x", "url": "http://h:1"}, 400, "invalid_request"),
        ({"name": "x", "url": "http://h:1", "extra": 1}, 400, "invalid_request"),
    ],
)
async def test_bad_server_settings_are_refused(harness, body, status, kind):
    code, answer = await harness.post("/parallel/executors/comfyui", body)
    assert (code, answer["error"]["type"]) == (status, kind)
    assert "x" not in harness.offload.deps.servers.all()


async def test_server_settings_from_another_site_are_refused(harness):
    body = {"name": "evil", "url": "http://attacker:8188"}
    code, _ = await harness.post(
        "/parallel/executors/comfyui", body, headers={"Origin": "http://evil.example"}
    )
    assert code == 403 and "evil" not in harness.offload.deps.servers.all()
