"""Balanced positive/negative sampling of matched priors (RPN anchors, Fast R-CNN RoIs)."""

from __future__ import annotations

import torch
from torch import Tensor


class BalancedSampler:
    """Pick up to ``batch_size_per_image`` priors per image, at most ``positive_fraction`` of
    them positive; negatives fill the rest. Batched: ``labels: Tensor[N, A]`` in {-1, 0, 1}
    → ``(positive: Tensor[N, A] bool, negative: Tensor[N, A] bool)``.
    """

    def __init__(self, batch_size_per_image: int, positive_fraction: float) -> None:
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    def __call__(self, labels: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        is_pos = labels == 1
        is_neg = labels == 0
        max_pos = int(self.batch_size_per_image * self.positive_fraction)
        num_pos = is_pos.sum(dim=1).clamp(max=max_pos)
        num_neg = (self.batch_size_per_image - num_pos).minimum(is_neg.sum(dim=1))
        return _random_subset(is_pos, num_pos, generator), _random_subset(is_neg, num_neg, generator)


def _random_subset(candidates: Tensor, counts: Tensor, generator: torch.Generator | None) -> Tensor:
    """Per row, a uniformly random ``counts[row]`` of the True entries of ``candidates: Tensor[N, A]``."""
    noise = torch.rand(candidates.shape, device=candidates.device, generator=generator)
    # Non-candidates sort after every candidate; the rank of each entry in its row decides.
    noise = noise.masked_fill(~candidates, 2.0)
    order = noise.argsort(dim=1)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order).contiguous())
    return candidates & (rank < counts[:, None])
