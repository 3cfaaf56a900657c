"""Position-sensitive RoI pooling and voting (R-FCN): by hand, against a loop over bins, and
against torchvision's plain roi_align bin by bin."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import roi_align

from detkit.ops.ps_roi import ps_pool_rois, ps_pool_rois_by_roi_align, vote


def loop_ps_roi_pool(maps: torch.Tensor, rois: torch.Tensor, k: int, scale: float) -> torch.Tensor:
    """R-FCN scores from first principles: bin (i, j) of a RoI averages channel d·k² + i·k + j over
    its whole cells (corners rounded half up to cells, bins floor/ceil of equal fractions, empty
    bins 0), then the k² bins are averaged. Bin edges are clipped to 0..H-1 and 0..W-1 as in
    torchvision's kernel, so the map's last row and column are never read."""
    _, channels, height, width = maps.shape
    depth = channels // (k * k)
    out = torch.zeros(rois.shape[0], depth)
    for r, (image, x1, y1, x2, y2) in enumerate(rois.tolist()):
        x_start, y_start = math.floor(x1 * scale + 0.5), math.floor(y1 * scale + 0.5)
        roi_w = max(math.floor(x2 * scale + 0.5) - x_start, 1)
        roi_h = max(math.floor(y2 * scale + 0.5) - y_start, 1)
        for d in range(depth):
            total = 0.0
            for i in range(k):
                for j in range(k):
                    top = min(max(math.floor(i * roi_h / k) + y_start, 0), height - 1)
                    bottom = min(max(math.ceil((i + 1) * roi_h / k) + y_start, 0), height - 1)
                    left = min(max(math.floor(j * roi_w / k) + x_start, 0), width - 1)
                    right = min(max(math.ceil((j + 1) * roi_w / k) + x_start, 0), width - 1)
                    cells = maps[int(image), d * k * k + i * k + j, top:bottom, left:right]
                    total += float(cells.mean()) if cells.numel() else 0.0
            out[r, d] = total / (k * k)
    return out


def test_hand_computed_two_by_two_bins():
    # One class map per bin of a 2 x 2 grid, each constant except one marked cell.
    # 5 x 5 map: the RoI's 4 x 4 cells stay clear of the last row and column (see the loop).
    maps = torch.zeros(1, 4, 5, 5)
    maps[0, 0, 0, 0] = 4.0  # top-left bin's map, inside the top-left bin: counts (cell mean 4/4)
    maps[0, 1, 0, 0] = 8.0  # top-right bin's map, but outside the top-right bin: ignored
    maps[0, 3, 3, 3] = 12.0  # bottom-right bin's map inside its bin: counts (12/4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
    pooled = ps_pool_rois(maps, rois, output_size=2, spatial_scale=1.0, kind="ps_roi_pool")
    assert pooled.shape == (1, 1, 2, 2)
    assert torch.allclose(pooled[0, 0], torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    assert torch.allclose(vote(pooled), torch.tensor([[1.0]]))  # (1 + 0 + 0 + 3) / 4


@pytest.mark.parametrize("k, scale", [(3, 1.0), (2, 0.5), (3, 0.125)])
def test_ps_roi_pool_and_vote_match_the_loop(k, scale):
    generator = torch.Generator().manual_seed(k)
    depth = 4
    maps = torch.randn(2, depth * k * k, 9, 11, generator=generator)
    size = torch.tensor([11.0, 9.0]) / scale
    corners = torch.rand(12, 2, 2, generator=generator) * size
    boxes = torch.cat((corners.min(dim=1).values, corners.max(dim=1).values + 1.0 / scale), dim=1)
    rois = torch.cat((torch.randint(0, 2, (12, 1), generator=generator).float(), boxes), dim=1)
    got = vote(ps_pool_rois(maps, rois, output_size=k, spatial_scale=scale, kind="ps_roi_pool"))
    assert torch.allclose(got, loop_ps_roi_pool(maps, rois, k, scale), atol=1e-5)


def test_ps_roi_align_bin_reads_its_own_channel_as_roi_align_would():
    generator = torch.Generator().manual_seed(0)
    k, depth = 3, 2
    maps = torch.randn(1, depth * k * k, 10, 10, generator=generator)
    rois = torch.tensor([[0.0, 3.2, 4.1, 51.7, 60.3], [0.0, 0.0, 0.0, 79.0, 30.5]])
    pooled = ps_pool_rois(maps, rois, output_size=k, spatial_scale=1 / 8, kind="ps_roi_align", sampling_ratio=2)
    # torchvision's ps_roi_align samples like roi_align with aligned=True (half-pixel offset).
    plain = roi_align(maps, rois, k, 1 / 8, 2, aligned=True)  # [R, depth·k², k, k]
    for d in range(depth):
        for i in range(k):
            for j in range(k):
                assert torch.allclose(pooled[:, d, i, j], plain[:, d * k * k + i * k + j, i, j], atol=1e-5)


def test_maps_must_hold_a_multiple_of_k_squared_channels():
    with pytest.raises(ValueError, match="multiple of k"):
        ps_pool_rois(torch.zeros(1, 10, 4, 4), torch.zeros(1, 5), output_size=3, spatial_scale=1.0)
    with pytest.raises(ValueError, match="unknown"):
        ps_pool_rois(torch.zeros(1, 9, 4, 4), torch.zeros(1, 5), output_size=3, spatial_scale=1.0, kind="nope")


@pytest.mark.parametrize("kind", ["ps_roi_align", "ps_roi_pool"])
@pytest.mark.parametrize("k, scale, ratio", [(3, 1.0, 2), (2, 0.5, 1), (7, 1 / 16, 2), (3, 0.125, 3)])
def test_the_onnx_form_equals_torchvisions_kernels(kind, k, scale, ratio):
    """The export path (plain roi_align over one sub-box per bin) against torchvision's
    position-sensitive kernels, on random maps and RoIs that reach past the map's edges."""
    generator = torch.Generator().manual_seed(k * 10 + ratio)
    depth = 3
    maps = torch.randn(2, depth * k * k, 9, 11, generator=generator)
    size = torch.tensor([11.0, 9.0]) / scale
    corners = torch.rand(40, 2, 2, generator=generator) * size * 1.2 - 0.1 * size
    extent = torch.rand(40, 1, generator=generator) * 2 / scale
    boxes = torch.cat((corners.min(dim=1).values, corners.max(dim=1).values + extent), dim=1)
    rois = torch.cat((torch.randint(0, 2, (40, 1), generator=generator).float(), boxes), dim=1)
    expected = ps_pool_rois(maps, rois, output_size=k, spatial_scale=scale, kind=kind, sampling_ratio=ratio)
    got = ps_pool_rois_by_roi_align(maps, rois, output_size=k, spatial_scale=scale, kind=kind, sampling_ratio=ratio)
    assert got.shape == expected.shape == (40, depth, k, k)
    assert expected.abs().sum() > 0
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
