"""Presenting metrics: a console table, an atomic JSON file, PR curves as a PNG.

The confusion matrix and the PR-curve data live beside their protocol (``confusion.py``,
``voc.py``) and are re-exported here, so tools import every report helper from one place.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from detkit.evaluation.coco import COCO_METRIC_KEYS
from detkit.evaluation.confusion import confusion_matrix, format_confusion_matrix
from detkit.evaluation.voc import PRCurve, precision_recall_curves

__all__ = [
    "confusion_matrix",
    "draw_pr_curves",
    "format_confusion_matrix",
    "format_metrics_table",
    "precision_recall_curves",
    "save_metrics",
]


def _cell(value: float | None, width: int = 7) -> str:
    """A fraction to 3 decimals; None and pycocotools' -1 (undefined) as n/a."""
    if value is None or value < 0:
        return "n/a".rjust(width)
    return f"{value:.3f}".rjust(width)


def format_metrics_table(metrics: dict) -> str:
    """A readable table of ``evaluate()``'s result; sections that are absent are skipped.

    Shows the 12 COCO numbers, VOC07 (11-point) and VOC12 (area) mAP, and per-class AP with
    VOC12, VOC07 and COCO AP@[.5:.95] side by side. "n/a" marks a class without ground truth.
    """
    lines: list[str] = []
    counts = metrics.get("counts")
    if counts:
        lines.append(
            f"{counts['images']} images, {counts['annotations']} objects, {counts['detections']} detections"
        )
    coco = metrics.get("coco")
    if coco:
        backend = metrics.get("params", {}).get("coco_backend", "pycocotools")
        lines.append(f"COCO bbox ({backend})")
        for keys in (COCO_METRIC_KEYS[:6], COCO_METRIC_KEYS[6:]):
            lines.append("".join(k.rjust(7) for k in keys))
            lines.append("".join(_cell(coco.get(k)) for k in keys))
    iou = metrics.get("params", {}).get("voc_iou_threshold", 0.5)
    voc_parts = [
        f"{label} {_cell(metrics[key]['mAP'], 0)}"
        for key, label in (("voc07", "VOC07 (11-point)"), ("voc12", "VOC12 (area)"))
        if key in metrics
    ]
    if voc_parts:
        lines.append(f"VOC mAP@{iou:g}: " + "   ".join(voc_parts))

    columns = [
        (title, table)
        for title, table in (
            ("VOC12", metrics.get("voc12", {}).get("per_class")),
            ("VOC07", metrics.get("voc07", {}).get("per_class")),
            ("COCO AP", metrics.get("coco_per_class")),
        )
        if table
    ]
    if columns:
        names = list(dict.fromkeys(name for _, table in columns for name in table))
        width = max(len("class"), *(len(n) for n in names)) + 2
        lines.append("")
        lines.append("class".ljust(width) + "".join(title.rjust(9) for title, _ in columns))
        lines.extend(
            name.ljust(width) + "".join(_cell(table.get(name), 9) for _, table in columns) for name in names
        )
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN/Inf to None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_metrics(metrics: dict, path: str | Path) -> Path:
    """Write ``metrics`` as JSON, atomically (temporary file in the same folder + ``os.replace``),
    so a reader never sees a half-written file. Creates the folder. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_plain(metrics), indent=2, allow_nan=False)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def draw_pr_curves(curves: dict[str, PRCurve | None], path: str | Path, *, size: int = 480) -> Path:
    """Draw precision (y) against recall (x) for every class with ground truth into a PNG.

    ``curves`` is ``precision_recall_curves()``'s result. Uses OpenCV (already a dependency).
    """
    import cv2

    margin, legend = 40, 180
    image = np.full((size, size + legend, 3), 255, dtype=np.uint8)
    plot = size - 2 * margin
    cv2.rectangle(image, (margin, margin), (margin + plot, margin + plot), (0, 0, 0), 1)
    cv2.putText(
        image, "recall", (margin + plot // 2 - 20, size - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1
    )
    cv2.putText(image, "precision", (4, margin - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for text, origin in (
        ("0", (margin - 12, margin + plot + 14)),
        ("1", (margin + plot - 4, margin + plot + 14)),
        ("1", (margin - 12, margin + 5)),
    ):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    drawn = [(name, curve) for name, curve in curves.items() if curve is not None and len(curve.recall)]
    for index, (name, curve) in enumerate(drawn):
        hue = int(180 * index / max(len(drawn), 1))
        color = tuple(int(c) for c in cv2.cvtColor(np.uint8([[[hue, 220, 200]]]), cv2.COLOR_HSV2BGR)[0, 0])
        xs = margin + curve.recall * plot
        ys = margin + (1.0 - curve.precision) * plot
        points = np.round(np.stack([xs, ys], axis=1)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image, [points], isClosed=False, color=color, thickness=2)
        y = margin + 16 * index + 10
        if y < size - 4:
            cv2.putText(image, name[:22], (size + 6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write PR-curve image {path}")
    return path
