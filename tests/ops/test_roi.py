"""RoI pooling keeps float32 coordinates when the features are bf16 (autocast): a bf16 RoI would
sit on a 2 px grid from 256 px and an 8 px grid from 1024 px."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from detkit.ops.roi import pool_rois, warp_crops

# Corners that bf16 cannot hold (8 significant bits): 301 → 300, 1021 → 1020.
ROIS = torch.tensor([[0.0, 301.0, 17.0, 333.0, 45.0], [0.0, 1021.0, 3.0, 1037.0, 29.0]])


def _ramp(width: int) -> torch.Tensor:
    """Features whose value is the column index: pooled values read off where a RoI sampled."""
    return torch.arange(width, dtype=torch.float32).repeat(1, 2, 48, 1)


@pytest.mark.parametrize("kind", ["roi_align", "roi_pool"])
def test_bf16_features_pool_at_the_float32_coordinates(kind: str) -> None:
    features = _ramp(1100).bfloat16()  # integers below 256 are exact in bf16; larger ones round
    pooled = pool_rois(features, ROIS, output_size=2, spatial_scale=1.0, kind=kind)
    assert pooled.dtype == torch.bfloat16
    reference = pool_rois(features.float(), ROIS, output_size=2, spatial_scale=1.0, kind=kind)
    assert torch.equal(pooled, reference.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(pool_rois(features, ROIS, output_size=2, spatial_scale=1.0, kind=kind), pooled)


def test_bf16_coordinates_would_have_moved_the_rois() -> None:
    # The failure the float32 path prevents: the same call with bf16 RoIs samples elsewhere.
    features = _ramp(1100)
    exact = roi_align(features, ROIS, 2, 1.0, 2, aligned=True)
    rounded = roi_align(features, ROIS.bfloat16().float(), 2, 1.0, 2, aligned=True)
    assert (exact - rounded).abs().max() >= 0.5


def test_warp_crops_under_autocast_equals_float32() -> None:
    images = _ramp(1100)[:, :1].expand(1, 3, 48, 1100).contiguous()
    expected = warp_crops(images, ROIS, output_size=4, context_padding=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = warp_crops(images, ROIS, output_size=4, context_padding=1.0)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
