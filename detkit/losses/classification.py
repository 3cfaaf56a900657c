"""Classification losses: softmax cross-entropy (background class 0) and sigmoid BCE."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cross_entropy(logits: Tensor, labels: Tensor, *, normalizer: float | Tensor = 1.0) -> Tensor:
    """``logits: Tensor[M, C+1]``, ``labels: Tensor[M]`` in 0..C (0 = background) → summed CE
    divided by ``normalizer``. M = 0 gives 0."""
    return F.cross_entropy(logits.float(), labels, reduction="sum") / normalizer


def binary_cross_entropy(logits: Tensor, targets: Tensor, *, normalizer: float | Tensor = 1.0) -> Tensor:
    """Sigmoid BCE on logits, summed and divided by ``normalizer``; ``targets`` in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="sum") / normalizer
