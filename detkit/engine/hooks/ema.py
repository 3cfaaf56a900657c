"""Exponential moving average of model weights, and the hook that updates it."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from detkit.engine.dist import unwrap_model
from detkit.engine.hooks.base import HookBase


class ModelEMA:
    """A frozen copy of the model whose weights follow ``ema = d * ema + (1 - d) * weights``.

    The decay ramps up as ``d_t = decay * (1 - exp(-t / warmup))`` over the first updates
    (t counts updates, from 1), so early weights, far from the final ones, fade out quickly;
    ``warmup=0`` uses ``decay`` from the start. Floating-point buffers (BatchNorm statistics)
    are averaged like parameters; integer buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9998, warmup: float = 2000.0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        if warmup < 0:
            raise ValueError(f"EMA warmup must be >= 0, got {warmup}")
        self.module = copy.deepcopy(unwrap_model(model)).eval()
        self.module.requires_grad_(False)
        self.decay, self.warmup = float(decay), float(warmup)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the most recent update used."""
        if self.warmup == 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.warmup))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        weight = 1.0 - self.current_decay()
        source = unwrap_model(model).state_dict()
        ema_floats, model_floats = [], []
        for name, ema_value in self.module.state_dict().items():
            value = source[name].detach()
            if ema_value.is_floating_point():
                ema_floats.append(ema_value)
                model_floats.append(value.to(ema_value.dtype))
            else:
                ema_value.copy_(value)
        if ema_floats:
            torch._foreach_lerp_(ema_floats, model_floats, weight)

    @contextlib.contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[None]:
        """Temporarily put the EMA weights into ``model`` (in place, so wrappers keep working)."""
        target = unwrap_model(model)
        backup = {name: value.detach().clone() for name, value in target.state_dict().items()}
        target.load_state_dict(self.module.state_dict())
        try:
            yield
        finally:
            target.load_state_dict(backup)

    def state_dict(self) -> dict[str, Any]:
        return {
            "module": self.module.state_dict(),
            "updates": self.updates,
            "decay": self.decay,
            "warmup": self.warmup,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


class EMAHook(HookBase):
    """Updates the trainer's EMA (``Trainer(ema=...)``) after every optimizer step; checkpoints and
    evaluation read the same ``trainer.ema``."""

    priority = 20

    def before_train(self) -> None:
        if self.trainer.ema is None:
            raise ValueError("EMAHook: the trainer has no EMA to update; pass Trainer(ema=ModelEMA(model, ...))")

    def after_step(self) -> None:
        self.trainer.ema.update(self.trainer.model)
