"""Box regression losses."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def smooth_l1(prediction: Tensor, target: Tensor, *, beta: float = 1.0, normalizer: float | Tensor = 1.0) -> Tensor:
    """Summed smooth-L1 (Huber with transition ``beta``) divided by ``normalizer``.

    ``prediction, target: Tensor[M, 4]`` (encoded deltas). With M = 0 it returns an exact 0 that
    still belongs to the graph, so images without objects give a zero box loss, not NaN.
    """
    loss = F.smooth_l1_loss(prediction.float(), target.float(), beta=beta, reduction="sum")
    return loss / normalizer


def zero_loss(like: Tensor) -> Tensor:
    """An exact +0 loss connected to ``like``'s graph (for batches with nothing to regress), so
    every parameter still gets a (zero) gradient, which DDP requires."""
    return like.new_zeros(()) + like.sum() * 0.0
