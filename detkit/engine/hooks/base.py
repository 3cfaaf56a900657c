"""The hook interface, and a running mean of scalars shared by the logging hooks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from detkit.engine.trainer import Trainer


class HookBase:
    """Something that acts around training steps; it sees the trainer as ``self.trainer``.

    The trainer calls hooks in ascending ``priority`` (ties keep the order given), so the
    order does not depend on how the caller listed them: the LR step (10) and the EMA update
    (20) come first, then evaluation (30), early stopping (40), checkpointing (50, which must
    see fresh metrics and every other hook's state) and the log writers (60).

    Hooks run on every rank; a hook that writes files or prints does so on rank 0 only. A hook
    with state that a resume needs returns it from ``state_dict`` (tensors and plain data).
    """

    priority: ClassVar[int] = 50
    trainer: Trainer

    def before_train(self) -> None:
        """Called once before the first step (also after resuming)."""

    def before_step(self) -> None:
        """Called before each ``run_step``; ``trainer.iter`` is the step about to run."""

    def after_step(self) -> None:
        """Called after each step; ``trainer.iters_done`` counts it already."""

    def after_train(self) -> None:
        """Called once at the end, also when training failed (``trainer.failed``) or stopped early."""

    @property
    def state_key(self) -> str:
        """The name this hook's state is saved under in a checkpoint: its class name. A name rather
        than a position, so that reordering or adding hooks keeps resume working; a hook class used
        twice in one run with state to save must give each instance its own key."""
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        del state


def is_due(iters_done: int, every: int, max_iters: int) -> bool:
    """True every ``every`` completed iterations and at the last one."""
    return iters_done % every == 0 or iters_done == max_iters


class ScalarWindow:
    """Mean of each scalar over the iterations since the last ``reset``."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def add(self, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self._sums[name] = self._sums.get(name, 0.0) + float(value)
                self._counts[name] = self._counts.get(name, 0) + 1

    def means(self) -> dict[str, float]:
        return {name: self._sums[name] / self._counts[name] for name in self._sums}

    def reset(self) -> None:
        self._sums.clear()
        self._counts.clear()

    def __len__(self) -> int:
        return max(self._counts.values(), default=0)
