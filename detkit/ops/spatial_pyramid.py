"""Spatial pyramid pooling of regions (SPP-net, He et al. 2014): every RoI max-pooled into n × n
bins for each level n of a pyramid, the levels flattened and concatenated into one vector whose
length does not depend on the RoI's size or aspect ratio.

The paper's detection pyramid is {6×6, 3×3, 2×2, 1×1} (50 bins) on the last conv map. Each level
is one ``torchvision.ops.roi_pool`` call (its bins: ``floor`` / ``ceil`` of equal fractions of the
RoI's cells, as the paper's window = ceil(a/n), stride = floor(a/n) approximates).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from detkit.ops.roi import pool_rois

SPP_NET_LEVELS = (6, 3, 2, 1)


def check_levels(levels: Sequence[int]) -> tuple[int, ...]:
    """``levels`` as a tuple of positive ints, or a ValueError naming the bad entry."""
    levels = tuple(levels)
    if not levels or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in levels):
        raise ValueError(f"pyramid levels must be positive ints (bins per side), got {list(levels)}")
    return levels


def pyramid_length(channels: int, levels: Sequence[int]) -> int:
    """Length of the pooled vector: ``channels · Σ n²`` (12,800 for 256 channels and the paper's pyramid)."""
    return channels * sum(n * n for n in check_levels(levels))


def spatial_pyramid_pool(
    features: Tensor, rois: Tensor, *, levels: Sequence[int] = SPP_NET_LEVELS, spatial_scale: float
) -> Tensor:
    """Max-pool every RoI at each pyramid level and concatenate.

    ``features: Tensor[N, C, H, W]``; ``rois: Tensor[R, 5]`` rows ``(image index, x1, y1, x2, y2)``
    in input-image pixels; ``spatial_scale`` = 1 / stride of ``features``. Returns
    ``Tensor[R, C · Σ n²]``: level by level in the order of ``levels``, each level flattened
    channel-major (``C × n × n``).
    """
    levels = check_levels(levels)
    pooled = [
        pool_rois(features, rois, output_size=n, spatial_scale=spatial_scale, kind="roi_pool").flatten(1)
        for n in levels
    ]
    return torch.cat(pooled, dim=1)
