"""warp_crops (detkit.ops.roi): R-CNN's batched crop-and-warp, checked against hand-computed pixels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from detkit.ops.roi import context_padded_boxes, warp_crops


def test_integer_downscale_is_exact_average_pooling() -> None:
    images = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    rois = torch.tensor([[0, 0, 0, 32, 32], [1, 16, 8, 48, 40]], dtype=torch.float32)
    crops = warp_crops(images, rois, output_size=16, sampling_ratio=2)
    assert crops.shape == (2, 3, 16, 16)
    # 2 x 2 samples per output pixel land exactly on pixel centres: a 2 x 2 average pool.
    assert torch.allclose(crops[0], F.avg_pool2d(images[0, :, :32, :32], 2), atol=1e-6)
    assert torch.allclose(crops[1], F.avg_pool2d(images[1, :, 8:40, 16:48], 2), atol=1e-6)


def test_linear_image_gives_bin_centres() -> None:
    # Pixel column j holds the value j, so bilinear sampling at x (pixel j's centre is j + 0.5) reads x - 0.5.
    width = 64
    images = torch.arange(width, dtype=torch.float32).expand(1, 1, 32, width).contiguous()
    x1, x2, size = 10.0, 30.0, 8
    crops = warp_crops(images, torch.tensor([[0, x1, 4.0, x2, 20.0]]), output_size=size)
    expected = x1 + (torch.arange(size) + 0.5) * (x2 - x1) / size - 0.5
    assert torch.allclose(crops[0, 0], expected.expand(size, size), atol=1e-5)


def test_context_padding_by_hand_and_equivalence() -> None:
    boxes = torch.tensor([[10.0, 10.0, 50.0, 30.0]])
    # 64 px crop, 8 px context: the box fills 48 px, so 8 warped px are 40/48*8 and 20/48*8 input px.
    padded = context_padded_boxes(boxes, output_size=64, context_padding=8)
    assert torch.allclose(padded, torch.tensor([[10 - 20 / 3, 10 - 10 / 3, 50 + 20 / 3, 30 + 10 / 3]]))
    images = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(1))
    rois = torch.cat((torch.zeros(1, 1), boxes), 1)
    with_context = warp_crops(images, rois, output_size=64, context_padding=8)
    explicit = warp_crops(images, torch.cat((torch.zeros(1, 1), padded), 1), output_size=64)
    assert torch.allclose(with_context, explicit)
    # The original box occupies the central 48 x 48 pixels of the warp.
    inner = warp_crops(images, rois, output_size=48)
    assert torch.allclose(with_context[:, :, 8:56, 8:56], inner, atol=0.05)


def test_context_beyond_the_image_reads_zero() -> None:
    images = torch.ones(1, 1, 32, 32)
    crops = warp_crops(images, torch.tensor([[0.0, 0.0, 0.0, 8.0, 8.0]]), output_size=32, context_padding=12)
    # 12 of 32 px are context on each side: 8 px box -> 12 px context = 12 input px before x = 0.
    assert crops[0, 0, :10, :10].abs().max() == 0
    assert crops[0, 0, 14:18, 14:18].min() == 1


def test_bad_arguments() -> None:
    images = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match="Tensor\\[R, 5\\]"):
        warp_crops(images, torch.zeros(2, 4), output_size=4)
    with pytest.raises(ValueError, match="no room"):
        warp_crops(images, torch.zeros(1, 5), output_size=16, context_padding=8)
