"""The Slow Passthrough's preview: a small JPEG of the first image it holds, in the tuple
shape ComfyUI's progress bar hook takes (its real use is covered by the worker and offload
integration tests, where ComfyUI sends it); and how soon it notices an interrupt, on a fake
clock with ComfyUI's few hooks stubbed (interrupting a real server is the e2e tests' part)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from parallel_runs_node.nodes import slow_passthrough
from parallel_runs_node.nodes.slow_passthrough import (
    PREVIEW_SIZE,
    SLICE,
    SlowPassthrough,
    preview_of,
)


def batch(height: int, width: int, channels: int = 3, count: int = 1) -> torch.Tensor:
    image = torch.zeros(count, height, width, channels)
    image[0, ..., 0] = 1.0  # the first image is red, the others black
    return image


def test_the_preview_is_a_thumbnail_of_the_first_image():
    kind, picture, max_size = preview_of(batch(600, 300, count=2))
    assert kind == "JPEG" and picture.mode == "RGB"
    assert picture.size == (PREVIEW_SIZE // 2, PREVIEW_SIZE) and max_size == PREVIEW_SIZE
    assert picture.getpixel((10, 10)) == (255, 0, 0)


def test_small_images_keep_their_size():
    _, picture, max_size = preview_of(batch(48, 64))
    assert picture.size == (64, 48) and max_size == 64  # ComfyUI would scale it up to max_size


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_other_channel_counts_become_rgb(channels):
    _, picture, _ = preview_of(batch(8, 8, channels))
    assert picture.mode == "RGB" and picture.size == (8, 8)


@pytest.mark.parametrize("value", [None, "image", torch.zeros(2), torch.zeros(1, 4, 4, 7)])
def test_anything_else_gives_no_preview(value):
    assert preview_of(value) is None


# --------------------------------------------------------------------------- interrupts


class Interrupted(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


class FakeTime:
    """A clock that only moves when the node sleeps; it also plays the user who presses
    Cancel once `interrupt_at` seconds have passed."""

    def __init__(self, interrupt_at: float) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.interrupt_at = interrupt_at

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def check(self) -> None:
        if self.now >= self.interrupt_at:
            raise Interrupted


@pytest.fixture
def comfy_modules(monkeypatch):
    """Just the parts of ComfyUI the node calls: the interrupt check, a progress bar and the
    server's progress text (recorded)."""
    updates: list[tuple[int, int]] = []

    class ProgressBar:
        def __init__(self, total: int, node_id: str | None = None) -> None:
            pass

        def update_absolute(self, value: int, total: int, preview: object = None) -> None:
            updates.append((value, total))

    class PromptServer:
        instance = types.SimpleNamespace(send_progress_text=lambda text, node: None)

    comfy = types.ModuleType("comfy")
    comfy.model_management = types.ModuleType("comfy.model_management")
    comfy.utils = types.ModuleType("comfy.utils")
    comfy.utils.ProgressBar = ProgressBar
    server = types.ModuleType("server")
    server.PromptServer = PromptServer
    for name, module in (
        ("comfy", comfy),
        ("comfy.model_management", comfy.model_management),
        ("comfy.utils", comfy.utils),
        ("server", server),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    return comfy.model_management, updates


def run_node(monkeypatch, comfy_modules, clock: FakeTime, seconds: float, steps: int):
    management, updates = comfy_modules
    monkeypatch.setattr(slow_passthrough, "time", clock)
    management.throw_exception_if_processing_interrupted = clock.check
    image = batch(4, 4)
    return SlowPassthrough().run(image, seconds, steps, unique_id="2"), image, updates


def test_an_hour_long_step_stops_within_a_tenth_of_a_second_of_an_interrupt(
    monkeypatch, comfy_modules
):
    clock = FakeTime(interrupt_at=1.0)
    with pytest.raises(Interrupted):
        run_node(monkeypatch, comfy_modules, clock, seconds=3600.0, steps=1)
    assert clock.now <= 1.0 + SLICE + 1e-9  # noticed within one slice, not after an hour
    assert max(clock.sleeps) <= SLICE
    assert comfy_modules[1] == []  # the step never completed


def test_without_an_interrupt_it_waits_the_whole_time_and_reports_each_step(
    monkeypatch, comfy_modules
):
    clock = FakeTime(interrupt_at=float("inf"))
    (result,), image, updates = run_node(monkeypatch, comfy_modules, clock, seconds=1.0, steps=4)
    assert result is image and updates == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert clock.now == pytest.approx(1.0) and max(clock.sleeps) <= SLICE
