"""Presenting the error breakdown (``errors.error_breakdown``'s result): a Markdown table and a
bar chart. dAP is shown in AP points (x 100), as TIDE reports it; the JSON keeps fractions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detkit.evaluation.errors import CAUSES, SIZES

CAUSE_COLOURS = {
    "classification": "#d62728",
    "localisation": "#ff7f0e",
    "both": "#9467bd",
    "duplicate": "#8c564b",
    "background": "#1f77b4",
    "missed": "#7f7f7f",
}


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def format_errors_markdown(errors: dict) -> str:
    """The breakdown as Markdown: one row per cause (count, dAP, counts by size), the false
    positive / negative totals, then dAP per class and cause."""
    settings = errors["settings"]
    lines = [
        "# Error breakdown (TIDE)",
        "",
        f"AP at IoU {settings['foreground_iou']:g} as TIDE computes it: {_points(errors['ap'])}. "
        f"Foreground IoU {settings['foreground_iou']:g}, background IoU {settings['background_iou']:g}, "
        f"at most {settings['max_detections']} detections per image. dAP: AP points gained when an "
        "oracle fixes that cause alone. Size: a false positive's box area, a missed object's "
        "annotated area (small < 32², large > 96²).",
        "",
        "| cause | count | dAP | small | medium | large |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for cause in CAUSES:
        sizes = errors["by_size"][cause]
        lines.append(
            f"| {cause} | {errors['counts'][cause]} | {_points(errors['dAP'][cause])} | "
            + " | ".join(str(sizes[size]) for size in SIZES)
            + " |"
        )
    for key, label in (
        ("false_positives", "all false positives"),
        ("false_negatives", "all false negatives"),
    ):
        sizes = errors["by_size"][key]
        lines.append(
            f"| **{label}** | {errors['counts'][key]} | {_points(errors[f'dAP_{key}'])} | "
            + " | ".join(str(sizes[size]) for size in SIZES)
            + " |"
        )
    lines += [
        "",
        "## dAP per class",
        "",
        "| class | AP | " + " | ".join(CAUSES) + " |",
        "|---|---:|" + "---:|" * len(CAUSES),
    ]
    for name, row in errors["per_class"].items():
        cells = [_points(row["ap"]), *(_points(row["dAP"][cause]) for cause in CAUSES)]
        lines.append(f"| {name.replace('|', chr(92) + '|')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_error_breakdown(errors: dict, path: str | Path) -> dict[str, np.ndarray]:
    """Bar chart: dAP per cause (left), false positives and false negatives by size (right).
    Returns the drawn values: ``dAP`` (points, ``CAUSES`` order), ``false_positives`` and
    ``false_negatives`` (counts, ``SIZES`` order)."""
    from matplotlib.figure import Figure

    dap = np.array([100 * errors["dAP"][cause] for cause in CAUSES])
    fp = np.array([errors["by_size"]["false_positives"][size] for size in SIZES])
    fn = np.array([errors["by_size"]["false_negatives"][size] for size in SIZES])
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[3, 2])
    positions = np.arange(len(CAUSES))
    left.barh(positions, dap, color=[CAUSE_COLOURS[cause] for cause in CAUSES])
    left.set_yticks(positions, CAUSES)
    left.invert_yaxis()
    left.set_xlabel("dAP (AP points gained when fixed)")
    left.set_xlim(0, max(float(dap.max()) * 1.2, 1.0))
    for y, value in zip(positions, dap, strict=True):
        left.text(value, y, f" {value:.2f}", va="center", fontsize=9)
    settings = errors["settings"]
    left.set_title(
        f"Error breakdown, AP{100 * settings['foreground_iou']:.0f} {100 * errors['ap']:.1f} "
        f"(fg IoU {settings['foreground_iou']:g}, bg IoU {settings['background_iou']:g})",
        fontsize=10,
    )
    width = 0.38
    sizes = np.arange(len(SIZES))
    right.bar(sizes - width / 2, fp, width, label="false positives", color="#d62728")
    right.bar(sizes + width / 2, fn, width, label="false negatives", color="#7f7f7f")
    right.set_xticks(sizes, SIZES)
    right.set_ylabel("count")
    right.set_title("By object size (COCO areas)", fontsize=10)
    right.legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return {"dAP": dap, "false_positives": fp, "false_negatives": fn}
