"""Position-sensitive RoI pooling and voting (R-FCN, Dai et al. 2016).

A bank of k² · D score maps, D maps per bin of a k × k grid: bin (i, j) of a RoI reads only its own
D maps (channels ``d · k² + i · k + j``, the layout of ``torchvision.ops.ps_roi_align`` /
``ps_roi_pool``) and averages them over the bin; the k² bins then vote by averaging into D values
per RoI. Nothing is learned per RoI: all the weights sit in the convolutions that make the maps.

ONNX has no position-sensitive pooling. While exporting to ONNX, both kinds become one plain
``roi_align`` (ONNX ``RoiAlign``) over k² · R sub-boxes, one per bin, each reading only its bin's
D maps with a 1 × 1 output: the same samples and the same averages (``ps_pool_rois_by_roi_align``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import ps_roi_align, ps_roi_pool, roi_align

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
    if kind not in ("ps_roi_align", "ps_roi_pool"):
        raise ValueError(f"unknown position-sensitive pooling {kind!r}; use 'ps_roi_align' or 'ps_roi_pool'")
    with torch.autocast(maps.device.type, enabled=False):
        if torch.onnx.is_in_onnx_export():
            pooled = ps_pool_rois_by_roi_align(
                maps.float(), rois.float(), output_size=output_size, spatial_scale=spatial_scale, kind=kind,
                sampling_ratio=sampling_ratio,
            )  # fmt: skip
        elif kind == "ps_roi_align":
            pooled = ps_roi_align(maps.float(), rois.float(), output_size, spatial_scale, sampling_ratio)
        else:
            pooled = ps_roi_pool(maps.float(), rois.float(), output_size, spatial_scale)
    return pooled.to(maps.dtype)


def ps_pool_rois_by_roi_align(
    maps: Tensor, rois: Tensor, *, output_size: int, spatial_scale: float, kind: PSRoiKind, sampling_ratio: int = 2
) -> Tensor:
    """``ps_pool_rois`` written with plain ``roi_align`` (ONNX ``RoiAlign``, half-pixel): the
    maps regrouped to ``Tensor[N · k², D, H, W]`` (group n · k² + b holds bin b's D maps of
    image n) and every RoI split into its k² bins, each pooled to 1 × 1 from its own group.

    ``ps_roi_align``: a bin's sub-box in feature cells is where torchvision's kernel puts the
    bin, so the ``sampling_ratio²`` bilinear samples fall on the same points. (With
    ``sampling_ratio`` 0, adaptive, the sample count comes from the sub-box, which can differ
    from the kernel's by float rounding.) ``ps_roi_pool``: the bin's whole cells, rounded and
    clipped as torchvision's kernel does (its edges clipped to 0..H-1 and 0..W-1), become a box
    whose adaptive grid samples each cell once at its centre, where bilinear sampling reads
    the cell exactly; an empty bin has no samples and pools to 0, as in the kernel.
    Returns ``Tensor[R, D, k, k]``.
    """
    batch, channels, height, width = maps.shape
    k = output_size
    bins = k * k
    depth = channels // bins
    grouped = maps.reshape(batch, depth, bins, height, width).transpose(1, 2)
    grouped = grouped.reshape(batch * bins, depth, height, width)
    steps = torch.arange(k, dtype=rois.dtype, device=rois.device)
    image = rois[:, 0]
    if kind == "ps_roi_align":
        # torchvision: RoI corners at scale · x - 0.5 (roi_align's aligned=True), bins of equal size.
        start = rois[:, 1:3] * spatial_scale - 0.5
        size = (rois[:, 3:5] * spatial_scale - 0.5 - start) / k  # [R, 2] (x, y)
        low = start[:, None, :] + steps[None, :, None] * size[:, None, :]  # [R, k, 2]
        high = low + size[:, None, :]
        offset, scale, ratio = 0.5, 1.0, sampling_ratio  # roi_align subtracts the 0.5 again
    else:
        # torchvision: corners rounded half away from zero (ONNX Round is half to even, hence floor).
        corner_start = _round_half_away(rois[:, 1:3] * spatial_scale)
        corner_end = _round_half_away(rois[:, 3:5] * spatial_scale)
        size = (corner_end - corner_start).clamp(min=1) / k
        limit = rois.new_tensor([width - 1, height - 1])
        low = torch.floor(steps[None, :, None] * size[:, None, :]) + corner_start[:, None, :]
        high = torch.ceil((steps[None, :, None] + 1) * size[:, None, :]) + corner_start[:, None, :]
        low, high = torch.minimum(low.clamp(min=0), limit), torch.minimum(high.clamp(min=0), limit)
        high = torch.maximum(high, low)  # empty bin: a zero-size box, no samples, 0
        # Box [c0, c1] samples c0 - 0.5 + (i + 0.5) = c0 + i, one per cell: bilinear reads it exactly.
        offset, scale, ratio = 0.0, 1.0, 0
    # Bin (i, j) of RoI r: x from column j, y from row i.
    x1 = low[:, None, :, 0].expand(-1, k, -1)
    x2 = high[:, None, :, 0].expand(-1, k, -1)
    y1 = low[:, :, None, 1].expand(-1, -1, k)
    y2 = high[:, :, None, 1].expand(-1, -1, k)
    group = image[:, None, None] * bins + torch.arange(bins, dtype=rois.dtype, device=rois.device).reshape(1, k, k)
    boxes = torch.stack((group, x1 + offset, y1 + offset, x2 + offset, y2 + offset), dim=3).reshape(-1, 5)
    pooled = roi_align(grouped, boxes, 1, scale, ratio, aligned=True)  # [R · k², D, 1, 1]
    return pooled.reshape(-1, k, k, depth).permute(0, 3, 1, 2)


def _round_half_away(values: Tensor) -> Tensor:
    """``std::round``: halves away from zero (``torch.round`` and ONNX ``Round`` go to even)."""
    return torch.sign(values) * torch.floor(values.abs() + 0.5)


def vote(pooled: Tensor) -> Tensor:
    """R-FCN's voting: ``pooled: Tensor[R, D, k, k]`` → ``Tensor[R, D]``, the mean over the k² bins."""
    return pooled.mean(dim=(2, 3))
