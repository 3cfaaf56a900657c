"""Hard-negative mining (SSD): keep, per image, only the background priors with the highest
classification loss, ``ratio`` of them for every positive.

Batched: one sort per row ranks every image's negatives at once, no per-image loop.
"""

from __future__ import annotations

import torch
from torch import Tensor


def hard_negative_mining(
    negative_losses: Tensor,
    positive: Tensor,
    negative: Tensor,
    *,
    ratio: float = 3.0,
    min_negatives: int = 0,
) -> Tensor:
    """Select hard negatives.

    ``negative_losses: Tensor[N, A]`` each prior's background classification loss (only the
    order matters; pass it detached), ``positive, negative: Tensor[N, A]`` bool (priors that are
    neither are ignored). Image i keeps its ``max(floor(ratio · positives_i), min_negatives)``
    highest-loss negatives (all of them when it has fewer) → ``Tensor[N, A]`` bool.

    ``min_negatives`` is what an image without objects (no positives) still contributes, so that
    background-only images keep teaching the classifier; set it to ``ratio`` or less to keep the
    exact ratio on every image that has a positive.
    """
    if negative_losses.shape != positive.shape or positive.shape != negative.shape:
        raise ValueError(
            f"negative_losses, positive and negative must have one shape [N, A], got "
            f"{tuple(negative_losses.shape)}, {tuple(positive.shape)}, {tuple(negative.shape)}"
        )
    if ratio < 0 or min_negatives < 0:
        raise ValueError(f"ratio and min_negatives must be >= 0, got {ratio}, {min_negatives}")
    num_positive = positive.sum(dim=1)
    num_negative = (num_positive.float() * ratio).floor().long().clamp(min=min_negatives)
    # Non-candidates sort last; a stable sort breaks loss ties by prior index, so the choice is
    # deterministic.
    scores = negative_losses.detach().float().masked_fill(~negative, float("-inf"))
    order = scores.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    rank.scatter_(1, order, positions)
    return negative & (rank < num_negative[:, None])
