"""Spatial pyramid pooling (SPP-net): by hand and against a loop over bins."""

from __future__ import annotations

import math

import pytest
import torch

from detkit.ops.spatial_pyramid import pyramid_length, spatial_pyramid_pool


def loop_pyramid(features: torch.Tensor, rois: torch.Tensor, levels, scale: float) -> torch.Tensor:
    """Max over each bin of each level, from first principles: RoI corners rounded half up to
    cells, the RoI spanning end - start + 1 cells, bins floor/ceil of equal fractions, clipped
    to the map, empty bins 0; levels concatenated, each flattened channel-major."""
    _, channels, height, width = features.shape
    rows = []
    for image, x1, y1, x2, y2 in rois.tolist():
        x_start, y_start = math.floor(x1 * scale + 0.5), math.floor(y1 * scale + 0.5)
        roi_w = max(math.floor(x2 * scale + 0.5) - x_start + 1, 1)
        roi_h = max(math.floor(y2 * scale + 0.5) - y_start + 1, 1)
        parts = []
        for n in levels:
            level = torch.zeros(channels, n, n)
            for i in range(n):
                for j in range(n):
                    top = min(max(math.floor(i * roi_h / n) + y_start, 0), height)
                    bottom = min(max(math.ceil((i + 1) * roi_h / n) + y_start, 0), height)
                    left = min(max(math.floor(j * roi_w / n) + x_start, 0), width)
                    right = min(max(math.ceil((j + 1) * roi_w / n) + x_start, 0), width)
                    cells = features[int(image), :, top:bottom, left:right]
                    if cells.numel():
                        level[:, i, j] = cells.amax(dim=(1, 2))
            parts.append(level.flatten())
        rows.append(torch.cat(parts))
    return torch.stack(rows)


def test_hand_computed_pyramid_on_a_ramp():
    # 4 x 4 map of values 0..15 row by row; the RoI covers all of it (corners 0 and 3 = 4 cells).
    features = torch.arange(16.0).view(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
    pooled = spatial_pyramid_pool(features, rois, levels=(2, 1), spatial_scale=1.0)
    # 2 x 2 level: the maxima of the four quadrants; 1 x 1 level: the maximum of all.
    assert pooled.tolist() == [[5.0, 7.0, 13.0, 15.0, 15.0]]
    assert pooled.shape[1] == pyramid_length(1, (2, 1))


def test_paper_pyramid_length():
    assert pyramid_length(256, (6, 3, 2, 1)) == 256 * 50  # the paper's 12,800-d pool5 of ZF-5


@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_pyramid_matches_the_loop(scale):
    generator = torch.Generator().manual_seed(1)
    features = torch.randn(2, 3, 13, 10, generator=generator)
    size = torch.tensor([10.0, 13.0]) / scale
    corners = torch.rand(10, 2, 2, generator=generator) * size
    boxes = torch.cat((corners.min(dim=1).values, corners.max(dim=1).values), dim=1)
    rois = torch.cat((torch.randint(0, 2, (10, 1), generator=generator).float(), boxes), dim=1)
    levels = (6, 3, 2, 1)
    got = spatial_pyramid_pool(features, rois, levels=levels, spatial_scale=scale)
    assert got.shape == (10, pyramid_length(3, levels))
    assert torch.allclose(got, loop_pyramid(features, rois, levels, scale))


def test_bad_levels_are_named():
    with pytest.raises(ValueError, match="pyramid levels"):
        spatial_pyramid_pool(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), levels=(3, 0), spatial_scale=1.0)
