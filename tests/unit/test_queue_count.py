"""ComfyUI's queue count (`queue_remaining`) counts the offloaded prompts that wait or run, as
its own queue's; a ComfyUI whose method or answer looks different keeps its own count."""

from __future__ import annotations

import pytest

from parallel_runs_node.server_routes.patches.guard import PatchRefused
from parallel_runs_node.server_routes.patches.queue_count import count_offloaded_in_queue


class Server:
    """PromptServer.get_queue_info as ComfyUI 0.3.75 answers it."""

    def __init__(self, local: int = 0) -> None:
        self.local = local

    def get_queue_info(self):
        return {"exec_info": {"queue_remaining": self.local}}


def test_offloaded_prompts_are_counted_with_the_local_ones():
    server, offloaded = Server(local=2), [0]
    count_offloaded_in_queue(server, lambda: offloaded[0])
    assert server.get_queue_info() == {"exec_info": {"queue_remaining": 2}}
    offloaded[0] = 3
    assert server.get_queue_info() == {"exec_info": {"queue_remaining": 5}}
    server.local = 0
    assert server.get_queue_info()["exec_info"]["queue_remaining"] == 3
    count_offloaded_in_queue(server, lambda: 100)  # wrapped once: a second call changes nothing
    assert server.get_queue_info()["exec_info"]["queue_remaining"] == 3


def test_a_failing_count_leaves_comfyuis_own_and_is_logged_once(caplog):
    server = Server(local=1)

    def broken() -> int:
        raise RuntimeError("registry closed")

    count_offloaded_in_queue(server, broken)
    assert server.get_queue_info() == {"exec_info": {"queue_remaining": 1}}
    assert server.get_queue_info() == {"exec_info": {"queue_remaining": 1}}
    assert caplog.text.count("counting offloaded prompts in the queue failed") == 1


class Renamed:
    def get_queue_info(self, user):
        return {"exec_info": {"queue_remaining": 0}}


class OtherAnswer:
    def get_queue_info(self):
        return {"queue": {"remaining": 0}}


class NoQueueYet:
    def get_queue_info(self):
        raise AttributeError("'PromptServer' object has no attribute 'prompt_queue'")


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        (object(), "no get_queue_info"),
        (Renamed(), "missing 1 required positional argument"),
        (OtherAnswer(), "no exec_info.queue_remaining"),
        (NoQueueYet(), "failed"),
    ],
)
def test_a_different_comfyui_keeps_its_own_count(server, reason):
    stock = getattr(server, "get_queue_info", None)
    with pytest.raises(PatchRefused, match=reason):
        count_offloaded_in_queue(server, lambda: 1)
    assert getattr(server, "get_queue_info", None) == stock
