"""RoI pooling over a feature pyramid: each RoI is pooled from the one level that suits its size.

FPN (Lin et al., 2017, arXiv 1612.03144, eq. 1) assigns a RoI of width w and height h (input
pixels) to level

    k = ⌊k0 + log2(√(w·h) / 224)⌋,  clamped to the pyramid's levels,

so a 224 px RoI (ImageNet's canonical size) goes to p``k0`` (k0 = 4), a 112 px one to p3 and a
448 px one to p5. ``torchvision.ops.MultiScaleRoIAlign`` does the same inside its own module; this
is the functional form on detkit's ``rois: Tensor[R, 5]`` layout, level by level with
``detkit.ops.roi.pool_rois``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detkit.ops.roi import pool_rois


def roi_levels(
    boxes: Tensor, *, min_level: int, max_level: int, canonical_size: float = 224.0, canonical_level: int = 4
) -> Tensor:
    """``boxes: Tensor[R, 4] xyxy`` (input pixels) → ``Tensor[R]`` int64 pyramid level (k of p_k) in
    ``min_level..max_level``."""
    area = ((boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)).float()
    # The small epsilon keeps a RoI of exactly 224 px at k0 despite floating-point rounding of log2.
    level = torch.floor(canonical_level + torch.log2(area.sqrt().clamp(min=1e-6) / canonical_size + 1e-6))
    return level.clamp(min_level, max_level).long()


def pool_rois_by_level(
    features: Sequence[Tensor],
    strides: Sequence[int],
    rois: Tensor,
    *,
    output_size: int,
    sampling_ratio: int = 2,
    canonical_size: float = 224.0,
    canonical_level: int = 4,
) -> Tensor:
    """RoI-align every RoI on its FPN level.

    ``features``: the levels' maps ``Tensor[N, C, H_l, W_l]`` (same C), shallow to deep, with
    ``strides`` (powers of two, consecutive); ``rois: Tensor[R, 5]`` rows ``(image index, x1, y1,
    x2, y2)`` in input pixels. Returns ``Tensor[R, C, output_size, output_size]`` in the RoIs' order.
    """
    if len(features) != len(strides) or not features:
        raise ValueError(f"pool_rois_by_level: {len(features)} feature maps for {len(strides)} strides")
    levels = [int(s).bit_length() - 1 for s in strides]
    assigned = roi_levels(
        rois[:, 1:],
        min_level=levels[0],
        max_level=levels[-1],
        canonical_size=canonical_size,
        canonical_level=canonical_level,
    )
    first = features[0]
    pooled = first.new_zeros((rois.shape[0], first.shape[1], output_size, output_size))
    for level, stride, feature in zip(levels, strides, features, strict=True):
        # Every level pools all RoIs and keeps its own: no data-dependent shapes, so a trace
        # (export) records the same graph whatever the RoIs' sizes.
        on_level = (assigned == level)[:, None, None, None]
        level_pooled = pool_rois(
            feature,
            rois,
            output_size=output_size,
            spatial_scale=1.0 / stride,
            kind="roi_align",
            sampling_ratio=sampling_ratio,
        )
        pooled = torch.where(on_level, level_pooled, pooled)
    return pooled
