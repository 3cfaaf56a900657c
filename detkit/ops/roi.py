"""Region-of-interest extraction: pooled features over one shared feature map (Fast/Faster
R-CNN) and warped image crops (R-CNN)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor
from torchvision.ops import roi_align, roi_pool

RoiKind = Literal["roi_pool", "roi_align"]


def rois_from_boxes(boxes_per_image: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-image ``Tensor[B_i, 4]`` xyxy boxes (at least one image) → ``rois: Tensor[R, 5]`` rows
    ``(image index, x1, y1, x2, y2)``, the layout ``pool_rois`` and ``warp_crops`` take, and
    ``image_index: Tensor[R]`` long."""
    boxes = torch.cat(list(boxes_per_image))
    counts = torch.tensor([b.shape[0] for b in boxes_per_image], device=boxes.device)
    image_index = torch.repeat_interleave(torch.arange(len(boxes_per_image), device=boxes.device), counts)
    return torch.cat((image_index[:, None].to(boxes.dtype), boxes), dim=1), image_index


def padded_rois(proposals: Tensor) -> Tensor:
    """``proposals: Tensor[N, P, 4] xyxy`` (P per image, padded) → ``rois: Tensor[N·P, 5]`` rows
    ``(image index, x1, y1, x2, y2)``, image-major; no data-dependent shape, so a trace keeps N
    and P dynamic."""
    num_images, num_proposals = proposals.shape[:2]
    image_index = torch.arange(num_images, device=proposals.device, dtype=proposals.dtype)
    image_column = image_index[:, None, None].expand(-1, num_proposals, 1)
    return torch.cat((image_column, proposals), dim=2).reshape(-1, 5)


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
    Returns ``Tensor[R, C, output_size, output_size]`` in the dtype of ``features``.

    Pooling runs in float32 whatever the features' dtype: under autocast the features may be
    bf16, and bf16 coordinates would move every RoI to a 2 px grid from 256 px (8 px from 1024).
    """
    if kind not in ("roi_pool", "roi_align"):
        raise ValueError(f"unknown RoI pooling {kind!r}; use 'roi_pool' or 'roi_align'")
    with torch.autocast(features.device.type, enabled=False):
        if kind == "roi_pool":
            pooled = roi_pool(features.float(), rois.float(), output_size, spatial_scale)
        else:
            pooled = roi_align(features.float(), rois.float(), output_size, spatial_scale, sampling_ratio, aligned=True)
    return pooled.to(features.dtype)


def context_padded_boxes(boxes: Tensor, *, output_size: int, context_padding: float) -> Tensor:
    """Grow ``boxes: Tensor[..., 4] xyxy`` so that, once warped to ``output_size`` square pixels,
    the original box fills the centre and ``context_padding`` warped pixels of surrounding image
    show on every side (R-CNN's context padding, p = 16 at 227 px).

    Each axis is scaled on its own (the warp is anisotropic): a side of length ``w`` maps to
    ``output_size - 2p`` pixels, so ``p`` warped pixels are ``p · w / (output_size - 2p)`` input pixels.
    """
    inner = output_size - 2 * context_padding
    if inner <= 0:
        raise ValueError(f"context_padding {context_padding} leaves no room in a {output_size} px crop")
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    pad_x = widths * (context_padding / inner)
    pad_y = heights * (context_padding / inner)
    return torch.stack(
        (boxes[..., 0] - pad_x, boxes[..., 1] - pad_y, boxes[..., 2] + pad_x, boxes[..., 3] + pad_y), dim=-1
    )


def warp_crops(
    images: Tensor,
    rois: Tensor,
    *,
    output_size: int,
    context_padding: float = 0.0,
    sampling_ratio: int = 2,
) -> Tensor:
    """Crop every RoI out of its image and warp it to ``output_size × output_size`` (R-CNN).

    ``images: Tensor[N, C, H, W]`` (normalised, so zero is the mean colour); ``rois: Tensor[R, 5]``
    rows ``(image index, x1, y1, x2, y2)`` in image pixels. ``context_padding``: warped pixels of
    context around each box (see ``context_padded_boxes``); context beyond the image border reads
    as zero, the mean colour, as in the paper. Returns ``Tensor[R, C, output_size, output_size]``.

    One bilinear ``roi_align`` call warps the whole batch of crops, each output pixel averaging
    ``sampling_ratio²`` samples (so shrinking a large box does not alias).
    """
    if rois.dim() != 2 or rois.shape[1] != 5:
        raise ValueError(f"rois must be Tensor[R, 5] (image index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    boxes = rois[:, 1:].float()  # float32 coordinates, as in pool_rois, whatever the images' dtype
    if context_padding:
        boxes = context_padded_boxes(boxes, output_size=output_size, context_padding=context_padding)
    rois = torch.cat((rois[:, :1].float(), boxes), dim=1)
    with torch.autocast(images.device.type, enabled=False):
        crops = roi_align(images.float(), rois, output_size, 1.0, sampling_ratio, aligned=True)
    return crops.to(images.dtype)
