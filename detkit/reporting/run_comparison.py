"""Validation curves of several runs side by side: how fine-tuning compares with training from
scratch at the same budget (docs/FINETUNING.md), or any two recipes.

Each run folder's ``log.jsonl`` gives its validation metric after every evaluation; the
comparison reports, per run, the first iteration whose evaluation reached a threshold (``None``
when none did) and the best value, and draws every curve on one PNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from detkit.reporting.training_log import EVAL_SERIES, read_training_log
from detkit.utils.figures import new_figure, save_figure


def first_iteration_reaching(iters: Sequence[int], values: Sequence[float], threshold: float) -> int | None:
    """The first of ``iters`` whose value is at least ``threshold`` (NaN never is)."""
    for iteration, value in zip(iters, values, strict=True):
        if not math.isnan(value) and value >= threshold:
            return int(iteration)
    return None


def compare_runs(
    run_dirs: Sequence[str | Path],
    labels: Sequence[str],
    *,
    metric: str = "VOC12 mAP",
    threshold: float = 0.7,
    plot_path: str | Path | None = None,
) -> list[dict]:
    """One row per run: ``label``, ``run_dir``, ``evaluations`` (count), ``best``, ``final``,
    ``iters_to_threshold``; with ``plot_path``, the curves (metric against iteration) as a PNG."""
    known = [label for _, label in EVAL_SERIES]
    if metric not in known:
        raise ValueError(f"metric {metric!r} is not one of {', '.join(known)}")
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(run_dirs)} run folders but {len(labels)} labels")
    rows, curves = [], []
    for run_dir, label in zip(run_dirs, labels, strict=True):
        log = read_training_log(Path(run_dir) / "log.jsonl")
        series = log.validation.get(metric)
        if series is None or series.iters.size == 0:
            raise ValueError(f"{run_dir}: log.jsonl holds no evaluation ({metric}); set engine.eval_every_epochs")
        values = [float(v) for v in series.values]
        rows.append({
            "label": label,
            "run_dir": str(run_dir),
            "evaluations": len(values),
            "best": max((v for v in values if not math.isnan(v)), default=math.nan),
            "final": values[-1],
            "iters_to_threshold": first_iteration_reaching(series.iters.tolist(), values, threshold),
        })
        curves.append((label, series))
    if plot_path is not None:
        figure = new_figure(6.4, 4.0)
        ax = figure.add_subplot(1, 1, 1)
        for label, series in curves:
            ax.plot(series.iters, series.values, marker="o", markersize=3, label=label)
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=0.8, label=f"{metric} {threshold}")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"validation {metric}")
        ax.set_ylim(0.0, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        save_figure(figure, plot_path)
    return rows
