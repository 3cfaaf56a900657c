"""Reading a run folder's ``log.jsonl`` into series to plot.

The file is written by ``engine.hooks.JSONLinesHook``, one JSON object per line:
``{"type": "train", "iter", "epoch", "time", "total_loss", "loss_*", "lr", ...}`` (window means
every few iterations) and ``{"type": "eval", "iter", "epoch", "time", "metrics": {...}}`` (after
each evaluation, ``metrics`` as ``evaluate()`` returns it). A resumed run appends to the same
file and may repeat iterations its crashed predecessor had logged past its last checkpoint; the
record written last wins.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Validation numbers worth a curve, as (nested key path, label).
EVAL_SERIES = (
    (("voc12", "mAP"), "VOC12 mAP"),
    (("voc07", "mAP"), "VOC07 mAP"),
    (("coco", "AP50"), "COCO AP50"),
    (("coco", "AP"), "COCO AP"),
)


@dataclass(frozen=True)
class Series:
    """``iters: int64[N]`` ascending and ``values: float64[N]`` (NaN where a value was missing)."""

    iters: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class TrainingLog:
    """Series by name: ``losses`` (``total_loss`` and every ``loss_*``), ``learning_rate`` (or
    None) and ``validation`` (labels of ``EVAL_SERIES`` that occur)."""

    losses: dict[str, Series] = field(default_factory=dict)
    learning_rate: Series | None = None
    validation: dict[str, Series] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.losses or self.validation or self.learning_rate is not None)


def _number(value) -> float:
    """A logged scalar as float; null (a non-finite value when logged), -1 (pycocotools'
    "undefined") and anything non-numeric become NaN so the curve shows a gap."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return math.nan
    return float(value)


def _series(records: list[dict], read) -> Series:
    iters = np.array([r["iter"] for r in records], dtype=np.int64)
    values = np.array([read(r) for r in records], dtype=np.float64)
    return Series(iters, values)


def read_training_log(path: str | Path) -> TrainingLog:
    """Parse ``log.jsonl``. Raises FileNotFoundError, or ValueError naming the file and line of a
    malformed record; a truncated last line (a run killed while writing it) is skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training log not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    latest: dict[tuple[str, int], dict] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a JSON record ({error})") from error
        if not isinstance(record, dict) or record.get("type") not in ("train", "eval"):
            raise ValueError(
                f"{path}:{number}: expected an object with type 'train' or 'eval', got {line[:80]!r}"
            )
        if isinstance(record.get("iter"), bool) or not isinstance(record.get("iter"), int):
            raise ValueError(f"{path}:{number}: record has no integer 'iter': {line[:80]!r}")
        latest[(record["type"], record["iter"])] = record

    train = sorted((r for (kind, _), r in latest.items() if kind == "train"), key=lambda r: r["iter"])
    evals = sorted((r for (kind, _), r in latest.items() if kind == "eval"), key=lambda r: r["iter"])
    loss_names = sorted({k for r in train for k in r if k.startswith("loss_")})
    if any("total_loss" in r for r in train):
        loss_names.insert(0, "total_loss")
    losses = {name: _series(train, lambda r, n=name: _number(r.get(n))) for name in loss_names}
    learning_rate = _series(train, lambda r: _number(r.get("lr"))) if any("lr" in r for r in train) else None

    def nested(record: dict, keys: tuple[str, ...]):
        value = record.get("metrics")
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    validation = {
        label: _series(evals, lambda r, k=keys: _number(nested(r, k)))
        for keys, label in EVAL_SERIES
        if any(nested(r, keys) is not None for r in evals)
    }
    for series in validation.values():
        series.values[series.values < 0] = math.nan  # pycocotools' -1: undefined, not zero
    return TrainingLog(losses, learning_rate, validation)
