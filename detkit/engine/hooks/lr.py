"""Per-iteration learning-rate schedules: linear warmup, then step decay, cosine or constant.

The schedule is a ``torch.optim.lr_scheduler.LambdaLR`` whose factor comes from
:func:`build_lr_lambda`, so its state (the iteration count) goes into checkpoints like any
scheduler's. At iteration ``i`` (0-based) the learning rate is ``base_lr * factor(i)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR

from detkit.engine.hooks.base import HookBase

LR_SCHEDULES = ("step", "cosine", "constant")


def build_lr_lambda(
    kind: str,
    *,
    max_iters: int,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    final_factor: float = 0.0,
) -> Callable[[int], float]:
    """The factor on the base learning rate at each iteration.

    Warmup: for ``i < warmup_iters`` the factor rises linearly from ``warmup_factor`` at i=0
    towards 1 (``warmup_factor + (1 - warmup_factor) * i / warmup_iters``), times the main
    schedule. Main schedules, by iteration ``i``:

    - ``step``: ``gamma ** (number of milestones <= i)``; milestones are absolute iterations.
    - ``cosine``: from 1 at the end of warmup down to ``final_factor`` at ``max_iters``,
      ``final + (1 - final) * (1 + cos(pi * t)) / 2`` with ``t = (i - warmup) / (max - warmup)``.
    - ``constant``: 1.
    """
    if kind not in LR_SCHEDULES:
        raise ValueError(f"unknown LR schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if max_iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    if not 0 <= warmup_iters < max_iters:
        raise ValueError(f"warmup_iters must be in [0, max_iters={max_iters}), got {warmup_iters}")
    if not 0.0 < warmup_factor <= 1.0:
        raise ValueError(f"warmup_factor must be in (0, 1], got {warmup_factor}")
    if not 0.0 <= final_factor <= 1.0:
        raise ValueError(f"final_factor must be in [0, 1], got {final_factor}")
    milestones = [int(m) for m in milestones]
    if kind == "step":
        if milestones != sorted(set(milestones)) or any(not 0 < m < max_iters for m in milestones):
            raise ValueError(
                f"milestones must be strictly increasing iterations in (0, max_iters={max_iters}), got {milestones}"
            )
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    decay_iters = max_iters - warmup_iters

    def main_factor(i: int) -> float:
        if kind == "step":
            return gamma ** sum(1 for m in milestones if m <= i)
        if kind == "cosine":
            progress = min(max(i - warmup_iters, 0) / decay_iters, 1.0)
            return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    def factor(i: int) -> float:
        if i < warmup_iters:
            alpha = i / warmup_iters
            return (warmup_factor + (1.0 - warmup_factor) * alpha) * main_factor(i)
        return main_factor(i)

    return factor


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    *,
    max_iters: int,
    warmup_iters: int = 0,
    warmup_factor: float = 0.001,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    final_factor: float = 0.0,
) -> LambdaLR:
    """``LambdaLR(optimizer, build_lr_lambda(...))``: the trainer's scheduler, which
    :class:`LRSchedulerHook` steps."""
    lr_lambda = build_lr_lambda(
        kind,
        max_iters=max_iters,
        warmup_iters=warmup_iters,
        warmup_factor=warmup_factor,
        milestones=milestones,
        gamma=gamma,
        final_factor=final_factor,
    )
    return LambdaLR(optimizer, lr_lambda)


class LRSchedulerHook(HookBase):
    """Steps the trainer's per-iteration scheduler (``Trainer(scheduler=...)``) after every
    optimizer step."""

    priority = 10

    def before_train(self) -> None:
        if self.trainer.scheduler is None:
            raise ValueError("LRSchedulerHook: the trainer has no LR scheduler to step; pass Trainer(scheduler=...)")

    def after_step(self) -> None:
        self.trainer.scheduler.step()
