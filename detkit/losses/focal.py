"""Sigmoid focal loss (Lin et al., 2017, arXiv 1708.02002), RetinaNet's classification loss.

    FL(p_t) = −α_t · (1 − p_t)^γ · log(p_t),   p_t = p where the target is 1, else 1 − p,
    α_t = α for targets 1, 1 − α for targets 0.

The (1 − p_t)^γ factor shrinks the loss of the many easy negatives so that they do not swamp the
few positives; α balances the two. ``torchvision.ops.sigmoid_focal_loss`` computes it.
"""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import sigmoid_focal_loss


def focal_loss(
    logits: Tensor, targets: Tensor, *, alpha: float = 0.25, gamma: float = 2.0, normalizer: float | Tensor = 1.0
) -> Tensor:
    """``logits, targets: Tensor[M, C]`` (targets in {0, 1}, one column per object class; a
    background anchor is all zeros) → the loss summed over every entry, divided by ``normalizer``
    (RetinaNet: the number of positive anchors). M = 0 gives 0. ``alpha < 0`` disables α-weighting."""
    loss = sigmoid_focal_loss(logits.float(), targets.float(), alpha=alpha, gamma=gamma, reduction="sum")
    return loss / normalizer
