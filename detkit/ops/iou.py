"""Intersection over union, in every form the detectors need. Boxes are ``xyxy`` float in
absolute pixels; degenerate boxes (zero area) have IoU 0 with everything.

- :func:`box_iou`: all pairs of two sets (``torchvision.ops.box_iou``);
- :func:`batched_box_iou`: all pairs per image of a padded batch (ground truth vs anchors);
- :func:`elementwise_box_iou`: matching pairs (a prediction and its own target);
- :func:`shape_iou`: widths and heights only, the boxes sharing one centre (anchor fitting).

The IoU-family losses (GIoU, DIoU, CIoU) live in ``detkit.losses.iou``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision import ops as tv_ops

from detkit.ops.boxes import box_area


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU. ``boxes1: Tensor[N, 4] xyxy``, ``boxes2: Tensor[M, 4] xyxy`` → ``Tensor[N, M]``."""
    return tv_ops.box_iou(boxes1, boxes2)


def batched_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU per batch element. ``boxes1: Tensor[B, N, 4] xyxy``; ``boxes2: Tensor[B, M, 4]`` or
    ``Tensor[M, 4]`` (shared, e.g. anchors) → ``Tensor[B, N, M]``.

    Degenerate boxes (zero area, used as padding) get IoU 0 with everything.
    """
    if boxes2.dim() == 2:
        boxes2 = boxes2.unsqueeze(0).expand(boxes1.shape[0], -1, -1)
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    top_left = torch.maximum(boxes1[:, :, None, :2], boxes2[:, None, :, :2])
    bottom_right = torch.minimum(boxes1[:, :, None, 2:], boxes2[:, None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, :, None] + area2[:, None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-9), torch.zeros_like(inter))


def elementwise_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of matching pairs: ``boxes1, boxes2: Tensor[..., 4] xyxy`` (broadcastable) → ``Tensor[...]``."""
    top_left = torch.maximum(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.minimum(boxes1[..., 2:], boxes2[..., 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    return inter / union.clamp(min=1e-9)


def shape_iou(wh1: Tensor, wh2: Tensor) -> Tensor:
    """IoU of boxes sharing one centre: ``wh1: Tensor[..., M, 2]``, ``wh2: Tensor[K, 2]`` (w, h)
    → ``Tensor[..., M, K]``."""
    inter = torch.minimum(wh1[..., :, None, 0], wh2[:, 0]) * torch.minimum(wh1[..., :, None, 1], wh2[:, 1])
    union = (wh1[..., 0] * wh1[..., 1])[..., None] + wh2[:, 0] * wh2[:, 1] - inter
    return inter / union.clamp(min=1e-9)
