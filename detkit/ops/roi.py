"""Region-of-interest feature extraction over one shared feature map (Fast/Faster R-CNN)."""

from __future__ import annotations

from typing import Literal

from torch import Tensor
from torchvision.ops import roi_align, roi_pool

RoiKind = Literal["roi_pool", "roi_align"]


def pool_rois(
    features: Tensor,
    rois: Tensor,
    *,
    output_size: int,
    spatial_scale: float,
    kind: RoiKind = "roi_pool",
    sampling_ratio: int = 2,
) -> Tensor:
    """Pool a fixed-size feature grid for every RoI.

    ``features: Tensor[N, C, H, W]``; ``rois: Tensor[R, 5]`` rows ``(image index, x1, y1, x2, y2)``
    in input-image pixels; ``spatial_scale`` = 1 / stride of ``features``.
    Returns ``Tensor[R, C, output_size, output_size]``.
    """
    rois = rois.to(features.dtype)
    if kind == "roi_pool":
        return roi_pool(features, rois, output_size, spatial_scale)
    if kind == "roi_align":
        return roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned=True)
    raise ValueError(f"unknown RoI pooling {kind!r}; use 'roi_pool' or 'roi_align'")
