"""Evaluation pictures as PNG: precision-recall curves, confusion matrix, training curves.

Figures come from ``detkit.utils.figures`` (no pyplot, so no window and no global state). Every
function returns the arrays it drew, so tests can check what a picture shows without reading pixels.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detkit.evaluation.voc import PRCurve
from detkit.reporting.training_log import TrainingLog
from detkit.utils.figures import new_figure, plain_log_axis, save_figure


@dataclass(frozen=True)
class PRPlotData:
    """What one class's panel shows. ``recall, precision: float64[D]``: the ranked detections'
    points; ``step_recall: float64[D + 1]`` (0 first) and ``step_precision: float64[D + 1]``: the
    precision envelope as a step drawn ``where="pre"`` (the value at ``step_recall[i]`` holds on
    ``(step_recall[i - 1], step_recall[i]]``), whose area is ``area`` (the VOC2010+ AP)."""

    recall: np.ndarray
    precision: np.ndarray
    step_recall: np.ndarray
    step_precision: np.ndarray
    area: float
    num_positives: int


def pr_plot_data(curve: PRCurve) -> PRPlotData:
    """The arrays ``plot_pr_curves`` draws for one class's ``PRCurve``."""
    envelope = np.maximum.accumulate(curve.precision[::-1])[::-1] if len(curve.precision) else curve.precision
    step_recall = np.concatenate([[0.0], curve.recall])
    step_precision = np.concatenate([envelope[:1], envelope]) if len(envelope) else np.zeros(1)
    area = float(np.sum(np.diff(step_recall) * step_precision[1:]))
    return PRPlotData(curve.recall, curve.precision, step_recall, step_precision, area, curve.num_positives)


def _grid(count: int) -> tuple[int, int]:
    """Rows and columns for ``count`` panels: one row up to 4, else about square."""
    columns = count if count <= 4 else math.ceil(math.sqrt(count))
    columns = max(columns, 1)
    return math.ceil(count / columns), columns


def plot_pr_curves(
    curves: dict[str, PRCurve | None], path: str | Path, *, matching: str = "VOC matching, IoU > 0.5"
) -> dict[str, PRPlotData]:
    """One panel per class with ground truth (``precision_recall_curves()``'s result): the ranked
    detections' precision against recall, and the shaded precision envelope whose area is the
    class's VOC12 AP (in the panel's title). Classes without ground truth are left out.
    Returns the plotted data by class name."""
    data = {name: pr_plot_data(curve) for name, curve in curves.items() if curve is not None}
    rows, columns = _grid(max(len(data), 1))
    width = max(2.3 * columns + 0.8, 5.0)
    title = textwrap.fill(
        f"Precision–recall per class ({matching}): orange = ranked detections, "
        "blue = precision envelope, shaded area = VOC12 AP",
        width=int(width * 14),  # characters of 9-point text per inch, about
    )
    top = 0.8 + 0.17 * title.count("\n")  # inches above the first row: figure title + panel titles
    height = 2.1 * rows + top + 0.6
    # Fixed margins in inches: the constrained layout takes ~10 s to place 80 panels.
    figure = new_figure(width, height, layout=None)
    figure.subplots_adjust(
        left=0.65 / width,
        right=1 - 0.15 / width,
        bottom=0.6 / height,
        top=1 - top / height,
        wspace=0.12,
        hspace=0.45,
    )
    # Not sharex/sharey: sharing costs time quadratic in the panels; fixed limits do the same.
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(data):
            ax.set_axis_off()
            continue
        name, item = list(data.items())[index]
        ax.fill_between(item.step_recall, item.step_precision, step="pre", color="tab:blue", alpha=0.25, lw=0)
        ax.step(item.step_recall, item.step_precision, where="pre", color="tab:blue", lw=1.2)
        ax.plot(item.recall, item.precision, color="tab:orange", lw=0.8, alpha=0.8)
        if not len(item.recall):
            ax.text(0.5, 0.5, "no detections", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        label = name if len(name) <= 22 else name[:21] + "…"
        ax.set_title(f"{label}\nAP {item.area:.3f}, {item.num_positives} obj.", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=7)
        ax.label_outer()
        ax.grid(alpha=0.3, lw=0.5)
    if not data:
        axes[0, 0].text(0.5, 0.5, "no class has ground truth", ha="center", va="center")
    figure.supxlabel("recall")
    figure.supylabel("precision")
    figure.suptitle(title, fontsize=9, y=1 - 0.08 / height, va="top")
    save_figure(figure, path)
    return data


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (rows summing to 0 stay 0): for a true class, the fraction of
    its objects detected as each class or missed; for the background row, how the false
    positives spread over the predicted classes."""
    totals = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def plot_confusion_matrix(
    matrix: np.ndarray,
    names: list[str],
    path: str | Path,
    *,
    normalize: bool = False,
    subtitle: str = "",
) -> tuple[np.ndarray, list[str]]:
    """Draw ``confusion_matrix()``'s ``int64[C + 1, C + 1]`` (rows true, columns predicted,
    background last) as a heat map, counts or row-normalised (``normalize_rows``).

    Classes with neither objects nor detections (an all-zero row and column) are left out so that
    the classes present stay readable; nonzero cells are written out while there is room (up to
    about 100 classes).
    Returns the drawn matrix and its names."""
    matrix = np.asarray(matrix)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    present[-1] = True  # background stays, as the picture's reference row and column
    shown = matrix[np.ix_(present, present)]
    shown_names = [n for n, keep in zip(names, present, strict=True) if keep]
    values = normalize_rows(shown) if normalize else shown.astype(np.float64)

    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import FuncFormatter

    size = len(shown_names)
    cell = 0.34  # inches per class: room for a 7-point label or a 3-digit count
    side = min(max(4.0, cell * size), 34.0)
    figure = new_figure(side + 2.2, side + 1.6)
    ax = figure.add_subplot()
    if normalize:
        scale = Normalize(vmin=0.0, vmax=1.0)
    else:
        # Counts span orders of magnitude (one frequent class dwarfs the rest): a log scale, with
        # the zero cells left blank so that every nonzero cell shows; vmin below 1 keeps a count
        # of 1 visibly tinted rather than white.
        scale = LogNorm(vmin=0.5, vmax=max(float(values.max()), 2.0))
    image = ax.imshow(np.ma.masked_equal(values, 0.0), cmap="Blues", norm=scale)
    figure.colorbar(
        image,
        ax=ax,
        shrink=0.5,
        label="fraction of the row" if normalize else "count (log scale)",
        format=FuncFormatter(lambda value, _position: f"{value:g}"),  # 1, 10, 100 rather than 10^k
    )
    font = 9 if size <= 15 else 7
    cell_inches = side / size
    ax.set_xticks(range(size), shown_names, rotation=90, fontsize=font)
    ax.set_yticks(range(size), shown_names, fontsize=font)
    ax.set_xlabel("predicted class (background column: objects nobody found)")
    ax.set_ylabel("true class (background row: detections of nothing)")
    ax.axhline(size - 1.5, color="grey", lw=0.8)
    ax.axvline(size - 1.5, color="grey", lw=0.8)
    if cell_inches >= 0.3:  # room for "0.93" or "123" in every cell: write the nonzero ones
        for row, column in zip(*np.nonzero(shown), strict=True):
            value = values[row, column]
            text = f"{value:.2f}" if normalize else str(int(value))
            color = "white" if scale(value) > 0.6 else "black"
            ax.text(column, row, text, ha="center", va="center", fontsize=font - 1, color=color)
    dropped = len(names) - size
    title = "Confusion matrix, " + ("normalised by row" if normalize else "counts")
    notes = [subtitle] if subtitle else []
    if dropped:
        notes.append(f"{dropped} classes without objects or detections not shown")
    ax.set_title(title + ("\n" + "; ".join(notes) if notes else ""), fontsize=11)
    save_figure(figure, path)
    return values, shown_names


def plot_training_curves(log: TrainingLog, path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Losses (log scale when all positive), learning rate and validation metrics against the
    iteration, one panel each (panels without data are left out). Returns, per panel title,
    the plotted series as ``{label: float64[2, N]}`` (iterations, values)."""
    panels: list[tuple[str, dict]] = []
    if log.losses:
        panels.append(("losses", log.losses))
    if log.learning_rate is not None:
        panels.append(("learning rate", {"lr": log.learning_rate}))
    if log.validation:
        panels.append(("validation", log.validation))
    if not panels:
        raise ValueError("the training log holds no losses, learning rate or validation metrics to plot")

    figure = new_figure(4.6 * len(panels) + 0.4, 3.8)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    plotted: dict[str, dict[str, np.ndarray]] = {}
    for ax, (title, series) in zip(axes, panels, strict=True):
        plotted[title] = {}
        for label, item in series.items():
            marker = "o" if title == "validation" else None
            width = 2.0 if label == "total_loss" else 1.0
            ax.plot(item.iters, item.values, label=label, lw=width, marker=marker, ms=3)
            plotted[title][label] = np.stack([item.iters.astype(np.float64), item.values])
        values = np.concatenate([s.values for s in series.values()])
        if title == "losses" and np.nanmin(values, initial=np.inf) > 0:
            plain_log_axis(ax, np.nanmin(values), np.nanmax(values))
        if title == "validation":
            ax.set_ylim(0, 1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3, lw=0.5)
        ax.tick_params(labelsize=8)
        if len(series) > 1:
            ax.legend(fontsize=7)
    save_figure(figure, path)
    return plotted
