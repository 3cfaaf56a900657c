"""Unfreezing the backbone part-way through fine-tuning (``engine.unfreeze_after_epochs``).

The usual two-phase fine-tune: the backbone's first stages stay frozen
(``model.backbone.frozen_stages``) while the new heads settle, then they train too. The
optimizer was built with the frozen parameters already in it (they have no gradient, so no
optimizer step or weight decay touches them), which keeps the learning-rate schedule and a
resumed optimizer state aligned. BatchNorm layers that were frozen stay ``FrozenBatchNorm2d``:
their statistics came from the pretraining data and small fine-tuning batches would disturb them
(freeze ``model.backbone.freeze_bn`` decides that separately).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from torch import nn

from detkit.engine.hooks.base import HookBase

logger = logging.getLogger("detkit")


class UnfreezeHook(HookBase):
    """From iteration ``at_iter`` on, every parameter of ``module`` has ``requires_grad=True``."""

    priority: ClassVar[int] = 5  # before the step's other hooks see the new state

    def __init__(self, module: nn.Module, at_iter: int) -> None:
        self.module = module
        self.at_iter = int(at_iter)
        self.done = False

    def before_step(self) -> None:
        if not self.done and self.trainer.iter >= self.at_iter:
            frozen = [param for param in self.module.parameters() if not param.requires_grad]
            for param in frozen:
                param.requires_grad_(True)
            self.done = True
            logger.info("Iteration %d: unfroze %d backbone tensors", self.trainer.iter, len(frozen))

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state) -> None:
        if state.get("done"):  # a resume past the unfreeze point: unfreeze before the first step
            self.done = False
            self.at_iter = 0
