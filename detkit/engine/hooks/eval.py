"""Periodic evaluation, and early stopping on one of its metrics."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from detkit.engine.dist import broadcast_object
from detkit.engine.hooks.base import HookBase, is_due
from detkit.engine.hooks.metrics import MetricTracker, flatten_metrics

logger = logging.getLogger(__name__)


class EvalHook(HookBase):
    """Runs ``evaluate_fn()`` every ``every_iters`` iterations and after the last one.

    ``evaluate_fn`` evaluates ``trainer.model`` on the validation set and returns the nested
    metrics dict (``{"coco": {...}, "voc07": {"mAP": ...}, "voc12": {...}}``). It is called on
    every rank (so it may gather across ranks); rank 0's result is then shared with all ranks,
    which keeps early-stopping decisions identical everywhere. With ``use_ema`` and a
    ``trainer.ema``, the EMA weights are swapped into the model for the evaluation.
    The results land in ``trainer.metrics`` with ``trainer.metrics_iter = trainer.iters_done``.
    """

    priority = 30

    def __init__(
        self, evaluate_fn: Callable[[], Mapping[str, Any]], every_iters: int, *, use_ema: bool = True
    ) -> None:
        if every_iters < 1:
            raise ValueError(f"every_iters must be >= 1, got {every_iters}")
        self.evaluate_fn = evaluate_fn
        self.every_iters = every_iters
        self.use_ema = use_ema

    def after_step(self) -> None:
        trainer = self.trainer
        if is_due(trainer.iters_done, self.every_iters, trainer.max_iters):
            self.evaluate()

    def evaluate(self) -> dict[str, Any]:
        trainer = self.trainer
        ema = trainer.ema if self.use_ema else None
        swap = ema.applied_to(trainer.model) if ema is not None else contextlib.nullcontext()
        trainer.model.eval()
        try:
            with swap:
                metrics = self.evaluate_fn()
        finally:
            trainer.model.train()
        metrics = broadcast_object(metrics)
        if not isinstance(metrics, Mapping):
            raise TypeError(f"evaluate_fn must return a dict of metrics, got {type(metrics).__name__}")
        trainer.metrics = dict(metrics)
        trainer.metrics_iter = trainer.iters_done
        summary = {k: v for k, v in flatten_metrics(metrics).items() if ".per_class." not in k}
        logger.info(
            "Evaluation at iteration %d%s: %s",
            trainer.iters_done,
            " (EMA weights)" if ema is not None else "",
            ", ".join(f"{k}={v:.4f}" for k, v in summary.items()),
        )
        return trainer.metrics


class EarlyStoppingHook(HookBase):
    """Stops training when ``metric_key`` has not improved for ``patience`` evaluations in a row."""

    priority = 40

    def __init__(self, metric_key: str, *, patience: int, mode: str = "max", min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1 evaluation, got {patience}")
        self.tracker = MetricTracker(metric_key, mode=mode, min_delta=min_delta)
        self.patience = patience
        self.evals_without_improvement = 0

    def after_step(self) -> None:
        trainer = self.trainer
        if trainer.metrics_iter != trainer.iters_done:
            return  # no evaluation at this iteration
        if self.tracker.update(trainer.metrics, trainer.iters_done):
            self.evals_without_improvement = 0
            return
        self.evals_without_improvement += 1
        if self.evals_without_improvement >= self.patience:
            best = "none finite" if self.tracker.best is None else f"{self.tracker.best:.4f}"
            trainer.request_stop(
                f"{self.tracker.key} has not improved for {self.patience} evaluation(s) "
                f"(best {best} at iteration {self.tracker.best_iter})"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "tracker": self.tracker.state_dict(),
            "evals_without_improvement": self.evals_without_improvement,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.tracker.load_state_dict(state["tracker"])
        self.evals_without_improvement = int(state["evals_without_improvement"])
