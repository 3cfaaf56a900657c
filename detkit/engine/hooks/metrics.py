"""Reading one number out of the nested evaluation metrics, and tracking its best value."""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)


def flatten_metrics(metrics: Mapping[str, Any], sep: str = ".") -> dict[str, float]:
    """``{"voc07": {"mAP": 0.5}}`` → ``{"voc07.mAP": 0.5}``; keeps numeric leaves only."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            for sub_key, sub_value in flatten_metrics(value, sep).items():
                flat[f"{key}{sep}{sub_key}"] = sub_value
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[str(key)] = float(value)
        elif hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # tensor or numpy scalar
            flat[str(key)] = float(value.item())
    return flat


def lookup_metric(metrics: Mapping[str, Any], key: str) -> float:
    """The value at a dotted ``key`` such as ``"voc12.mAP"`` or ``"coco.AP"``."""
    flat = flatten_metrics(metrics)
    if key in flat:
        return flat[key]
    summary_keys = [k for k in flat if ".per_class." not in k]
    close = difflib.get_close_matches(key, summary_keys, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise KeyError(
        f"metric {key!r} not in the evaluation results.{hint} Available: {', '.join(summary_keys)}"
    )


class MetricTracker:
    """Best value seen so far of one metric; ``mode`` is ``"max"`` (mAP) or ``"min"`` (a loss)."""

    def __init__(self, key: str, *, mode: str = "max", min_delta: float = 0.0) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        self.key, self.mode, self.min_delta = key, mode, min_delta
        self.best: float | None = None
        self.best_iter: int | None = None

    def update(self, metrics: Mapping[str, Any], iteration: int) -> bool:
        """Record this evaluation's value; True when it beats the best by more than ``min_delta``."""
        value = lookup_metric(metrics, self.key)
        if not math.isfinite(value):
            return False
        if self.best is not None:
            gain = value - self.best if self.mode == "max" else self.best - value
            if gain <= self.min_delta:
                return False
        self.best, self.best_iter = value, iteration
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"key": self.key, "best": self.best, "best_iter": self.best_iter}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("key") != self.key:
            logger.warning(
                "Checkpoint tracked metric %r, this run tracks %r: starting its best value afresh.",
                state.get("key"),
                self.key,
            )
            return
        self.best, self.best_iter = state["best"], state["best_iter"]
