"""Position-sensitive RoI pooling and voting (R-FCN, Dai et al. 2016).

A bank of k² · D score maps, D maps per bin of a k × k grid: bin (i, j) of a RoI reads only its own
D maps (channels ``d · k² + i · k + j``, the layout of ``torchvision.ops.ps_roi_align`` /
``ps_roi_pool``) and averages them over the bin; the k² bins then vote by averaging into D values
per RoI. Nothing is learned per RoI: all the weights sit in the convolutions that make the maps.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import ps_roi_align, ps_roi_pool

PSRoiKind = Literal["ps_roi_align", "ps_roi_pool"]


def ps_pool_rois(
    maps: Tensor,
    rois: Tensor,
    *,
    output_size: int,
    spatial_scale: float,
    kind: PSRoiKind = "ps_roi_align",
    sampling_ratio: int = 2,
) -> Tensor:
    """Position-sensitive pooling of ``maps: Tensor[N, D · k², H, W]`` (k = ``output_size``) for
    ``rois: Tensor[R, 5]`` rows ``(image index, x1, y1, x2, y2)`` in input pixels;
    ``spatial_scale`` = 1 / stride of ``maps``. Returns ``Tensor[R, D, k, k]``.

    ``ps_roi_pool`` averages the whole feature cells of each bin (RoI corners rounded to cells);
    ``ps_roi_align`` averages ``sampling_ratio²`` bilinear samples per bin (no rounding). Both run
    in float32 (bf16 RoI coordinates would snap to a coarse grid; see ``detkit.ops.roi.pool_rois``).
    """
    bins = output_size * output_size
    if maps.shape[1] % bins:
        raise ValueError(f"position-sensitive maps need a multiple of k² = {bins} channels, got {maps.shape[1]}")
    with torch.autocast(maps.device.type, enabled=False):
        if kind == "ps_roi_align":
            pooled = ps_roi_align(maps.float(), rois.float(), output_size, spatial_scale, sampling_ratio)
        elif kind == "ps_roi_pool":
            pooled = ps_roi_pool(maps.float(), rois.float(), output_size, spatial_scale)
        else:
            raise ValueError(f"unknown position-sensitive pooling {kind!r}; use 'ps_roi_align' or 'ps_roi_pool'")
    return pooled.to(maps.dtype)


def vote(pooled: Tensor) -> Tensor:
    """R-FCN's voting: ``pooled: Tensor[R, D, k, k]`` → ``Tensor[R, D]``, the mean over the k² bins."""
    return pooled.mean(dim=(2, 3))
