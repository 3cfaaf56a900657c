"""IoU matcher: give every prior (anchor, proposal, default box) a ground-truth box and a label.

Labels: ``1`` positive (IoU ≥ high), ``0`` negative (IoU < low), ``-1`` ignored (in between).
Works on a batch at once: ground truth padded to ``G_max`` per image is marked invalid and never
matched, so no per-image loop is needed.
"""

from __future__ import annotations

import torch
from torch import Tensor


class Matcher:
    """``iou: Tensor[N, G, A]`` (ground truth × priors per image) → ``matched_index: Tensor[N, A]``
    (index into G, meaningful where the label is 1) and ``labels: Tensor[N, A]`` in {-1, 0, 1}.

    ``allow_low_quality``: each ground-truth box also claims the priors that overlap it best, even
    below ``high`` (Faster R-CNN's rule, so that every object gets at least one positive). Ties
    are all kept. A ground truth with no overlap at all claims nothing.
    ``low`` may be a pair ``(low_min, low)``: IoU below ``low_min`` is then ignored rather than
    negative (Fast R-CNN's background range [0.1, 0.5)).
    """

    def __init__(self, high: float, low: float | tuple[float, float], *, allow_low_quality: bool = True) -> None:
        low_min, low_max = (low if isinstance(low, (tuple, list)) else (0.0, low))
        if not low_min <= low_max <= high:
            raise ValueError(
                f"matcher thresholds must satisfy low_min <= low <= high, got {low_min}, {low_max}, {high}"
            )
        self.high = high
        self.low = low_max
        self.low_min = low_min
        self.allow_low_quality = allow_low_quality

    def __call__(self, iou: Tensor, gt_valid: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``gt_valid: Tensor[N, G]`` bool marks real (non-padding) ground truth."""
        num_images, num_gt, num_priors = iou.shape
        if gt_valid is not None:
            iou = iou.masked_fill(~gt_valid[:, :, None], -1.0)
        if num_gt == 0:
            zeros = iou.new_zeros((num_images, num_priors), dtype=torch.long)
            return zeros, zeros.clone()
        best_iou, matched_index = iou.max(dim=1)  # [N, A]
        labels = torch.full_like(matched_index, -1)
        labels[best_iou < self.low] = 0
        labels[best_iou < self.low_min] = -1
        # An image without any ground truth has best IoU -1: all its priors are background
        # (the low_min rule is about near-misses of real objects, not about empty images).
        labels[best_iou < 0] = 0
        labels[best_iou >= self.high] = 1
        if self.allow_low_quality:
            best_for_gt = iou.max(dim=2, keepdim=True).values  # [N, G, 1]
            claims = (iou == best_for_gt) & (best_for_gt > 0)  # [N, G, A]
            claimed = claims.any(dim=1)
            # The prior goes to the ground truth that claimed it (the first one, on a tie: max
            # returns the first maximal index). max(dim).indices, not argmax(dim): on the CPU,
            # argmax over this middle dimension was about 30x slower for [8, 6, 3600].
            first_claim = claims.to(iou.dtype).max(dim=1).indices
            matched_index = torch.where(claimed, first_claim, matched_index)
            labels[claimed] = 1
        return matched_index, labels
