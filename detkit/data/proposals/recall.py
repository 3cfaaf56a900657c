"""Proposal recall: the share of ground-truth boxes that some proposal covers at an IoU threshold.

A detector that scores proposals (R-CNN, Fast R-CNN) can never find an object no proposal covers,
so recall at IoU 0.5 bounds its mAP50 and recall at 0.7 says how much its box regression must fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # accepted as input; this module itself runs on NumPy and never imports torch
    import torch


def best_overlaps(gt_boxes: np.ndarray | torch.Tensor, proposals: np.ndarray | torch.Tensor) -> np.ndarray:
    """For each ground-truth box, the best IoU any proposal reaches.

    ``gt_boxes: [G, 4] xyxy``, ``proposals: [P, 4] xyxy`` (same pixels) → ``[G]`` float64 in [0, 1]
    (0 for every box when there are no proposals).
    """
    # NumPy, not torch: this runs once per image of a dataset, in the data-side tools, where
    # tiny torch ops cost more in thread start-up than in arithmetic.
    gt = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    boxes = np.asarray(proposals, dtype=np.float64).reshape(-1, 4)
    if gt.shape[0] == 0 or boxes.shape[0] == 0:
        return np.zeros(gt.shape[0])
    top_left = np.maximum(gt[:, None, :2], boxes[None, :, :2])
    bottom_right = np.minimum(gt[:, None, 2:], boxes[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    gt_area = np.prod(np.clip(gt[:, 2:] - gt[:, :2], 0, None), axis=1)
    box_area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)
    union = gt_area[:, None] + box_area[None, :] - intersection
    iou = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    return iou.max(axis=1)


@dataclass
class RecallMeter:
    """Accumulates proposal recall over images. ``thresholds``: IoUs at which recall is reported."""

    thresholds: Sequence[float] = (0.5, 0.7)
    num_images: int = 0
    num_gt: int = 0
    num_proposals: int = 0
    _overlaps: list[np.ndarray] = field(default_factory=list, repr=False)

    def update(self, gt_boxes: np.ndarray | torch.Tensor, proposals: np.ndarray | torch.Tensor) -> None:
        """Add one image: its ``gt_boxes: [G, 4] xyxy`` and ``proposals: [P, 4] xyxy``."""
        overlaps = best_overlaps(gt_boxes, proposals)
        self._overlaps.append(overlaps)
        self.num_images += 1
        self.num_gt += overlaps.shape[0]
        self.num_proposals += int(np.asarray(proposals).reshape(-1, 4).shape[0])

    def summary(self) -> dict[str, float | int | None]:
        """``{"recall@0.5": ..., "recall@0.7": ..., "mean_best_iou", "boxes_per_image", "gt_per_image",
        "images", "gt_boxes"}``; recalls are ``None`` when there is no ground truth at all."""
        overlaps = np.concatenate(self._overlaps) if self._overlaps else np.zeros(0)
        result: dict[str, float | int | None] = {}
        for threshold in self.thresholds:
            result[f"recall@{threshold:g}"] = float((overlaps >= threshold).mean()) if overlaps.size else None
        result["mean_best_iou"] = float(overlaps.mean()) if overlaps.size else None
        result["boxes_per_image"] = self.num_proposals / self.num_images if self.num_images else 0.0
        result["gt_per_image"] = self.num_gt / self.num_images if self.num_images else 0.0
        result["images"] = self.num_images
        result["gt_boxes"] = self.num_gt
        return result
