"""Scalar writers for later analysis: TensorBoard event files and a JSON-lines log (rank 0 only)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detkit.engine.dist import is_main_process
from detkit.engine.hooks.base import HookBase, ScalarWindow, is_due
from detkit.engine.hooks.metrics import flatten_metrics


class TensorBoardHook(HookBase):
    """Training scalars (window means, tag ``train/<name>``) every ``every_iters`` iterations and
    every evaluation's metrics, nested keys joined by ``/`` (``eval/voc12/mAP``)."""

    priority = 60

    def __init__(self, log_dir: str | Path, *, every_iters: int = 20) -> None:
        if every_iters < 1:
            raise ValueError(f"every_iters must be >= 1, got {every_iters}")
        self.log_dir = Path(log_dir)
        self.every_iters = every_iters
        self._window = ScalarWindow()
        self._writer = None

    def before_train(self) -> None:
        if not is_main_process():
            return
        from torch.utils.tensorboard import SummaryWriter  # slow import, only where used

        start = self.trainer.start_iter
        # On resume, drop events a crashed run logged past the checkpoint so curves do not fold back.
        self._writer = SummaryWriter(str(self.log_dir), purge_step=start if start > 0 else None)

    def after_step(self) -> None:
        if self._writer is None:
            return
        trainer = self.trainer
        self._window.add(trainer.storage)
        step = trainer.iters_done
        if is_due(step, self.every_iters, trainer.max_iters):
            for name, value in self._window.means().items():
                self._writer.add_scalar(f"train/{name}", value, step)
            self._window.reset()
        if trainer.metrics_iter == step:
            for name, value in flatten_metrics(trainer.metrics, sep="/").items():
                self._writer.add_scalar(f"eval/{name}", value, step)
            self._writer.flush()

    def after_train(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class JSONLinesHook(HookBase):
    """Appends one JSON object per line to ``path``.

    ``{"type": "train", "iter", "epoch", "time", <scalar means>...}`` every ``every_iters``
    iterations and ``{"type": "eval", "iter", "epoch", "time", "metrics": {...nested...}}`` after
    each evaluation. Non-finite numbers are written as ``null`` so every line is strict JSON.
    """

    priority = 60

    def __init__(self, path: str | Path, *, every_iters: int = 20) -> None:
        if every_iters < 1:
            raise ValueError(f"every_iters must be >= 1, got {every_iters}")
        self.path = Path(path)
        self.every_iters = every_iters
        self._window = ScalarWindow()
        self._file = None

    def before_train(self) -> None:
        if not is_main_process():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # line-buffered: survives crashes

    def after_step(self) -> None:
        if self._file is None:
            return
        trainer = self.trainer
        self._window.add(trainer.storage)
        step = trainer.iters_done
        base = {"iter": step, "epoch": trainer.epoch_of(step - 1), "time": round(time.time(), 3)}
        if is_due(step, self.every_iters, trainer.max_iters):
            self._write({"type": "train", **base, **self._window.means()})
            self._window.reset()
        if trainer.metrics_iter == step:
            self._write({"type": "eval", **base, "metrics": trainer.metrics})

    def _write(self, record: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(_json_safe(record), allow_nan=False) + "\n")

    def after_train(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # tensor or numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)
