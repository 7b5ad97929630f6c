"""The Slow Passthrough's preview: a small JPEG of the first image it holds, in the tuple
shape ComfyUI's progress bar hook takes (its real use is covered by the worker and offload
integration tests, where ComfyUI sends it)."""

from __future__ import annotations

import pytest
import torch

from parallel_runs_node.nodes.slow_passthrough import PREVIEW_SIZE, preview_of


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
