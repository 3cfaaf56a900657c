"""Presenting metrics: a console table, an atomic JSON file, and the evaluation report folder
(pictures and per-class table) that ``tools/eval.py`` and training write.

The confusion matrix and the PR-curve data live beside their protocol (``confusion.py``,
``voc.py``), the drawing in ``plots.py``; they are re-exported here, so tools import every
report helper from one place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from detkit.evaluation.class_table import format_class_table_markdown, per_class_table
from detkit.evaluation.coco import COCO_METRIC_KEYS
from detkit.evaluation.confusion import confusion_matrix, format_confusion_matrix
from detkit.evaluation.errors import CAUSES, error_breakdown
from detkit.evaluation.evaluator import evaluate
from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth
from detkit.evaluation.voc import precision_recall_curves
from detkit.reporting.error_report import format_errors_markdown, plot_error_breakdown
from detkit.reporting.galleries import write_error_galleries
from detkit.reporting.html_report import write_html_report
from detkit.reporting.plots import plot_confusion_matrix, plot_pr_curves, plot_training_curves
from detkit.reporting.training_log import read_training_log
from detkit.utils.atomic_file import atomic_file

__all__ = [
    "confusion_matrix",
    "default_report_dir",
    "evaluate_with_report",
    "format_confusion_matrix",
    "format_metrics_table",
    "precision_recall_curves",
    "save_metrics",
    "write_evaluation_report",
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
    errors = metrics.get("errors")
    if errors:
        lines.append("")
        lines.append(
            "Errors (TIDE), AP points gained when fixed: "
            + ", ".join(f"{cause} {100 * errors['dAP'][cause]:.2f}" for cause in CAUSES)
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
    # 0644: mkstemp's private 0600 would hide results from other readers.
    with atomic_file(path, "w", permissions=0o644, encoding="utf-8") as file:
        file.write(text + "\n")
    return path


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_evaluation_report(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    metrics: dict | None,
    out_dir: str | Path,
    *,
    log_jsonl: str | Path | None = None,
    confusion_iou: float = 0.5,
    confusion_score: float = 0.3,
    image_paths: Mapping[int, str | Path] | None = None,
    gallery_images: int = 12,
) -> dict[str, Path]:
    """Write the evaluation pictures and tables into ``out_dir`` (created):

    - ``pr_curves.png``: per-class precision-recall curves (VOC matching) and their VOC12 AP;
    - ``confusion_matrix.png`` and ``confusion_matrix_normalized.png``: true against predicted
      class with a background row (detections of nothing) and column (missed objects), counts
      and row-normalised; ``confusion_matrix.json`` holds the counts and names;
    - ``per_class.md`` and ``per_class.json``: AP, AP50, VOC07, VOC12, object and detection counts;
    - ``errors.md``, ``errors.json`` and ``errors.png``: the error breakdown (TIDE: the cause of
      each false positive and missed object, the AP fixing each cause adds, counts by size);
    - ``errors_<cause>.jpg``: for each error cause, the ``gallery_images`` images where it costs
      most, drawn colour-coded by cause, when ``image_paths`` (image id -> file) is given;
    - ``training_curves.png``: losses, learning rate and validation metrics over iterations, when
      ``log_jsonl`` (a run folder's ``log.jsonl``) is given;
    - ``metrics.json`` (``metrics``, so the folder describes itself) and ``report.html``: one
      offline page with all of the above (``html_report.write_html_report``).

    Args:
        ground_truth, detections: as for ``evaluate()`` (COCO format, ``bbox`` ``[x, y, w, h]``).
        metrics: ``evaluate()``'s result for these inputs, or None to compute it here.
        confusion_iou, confusion_score: the confusion matrix's IoU (>=) and its score threshold.

    Returns:
        The written files by name: ``pr_curves``, ``confusion_matrix``,
        ``confusion_matrix_normalized``, ``confusion_matrix_json``, ``per_class_md``,
        ``per_class_json``, ``errors_md``, ``errors_json``, ``errors_png``, with images
        ``errors_<cause>`` for each cause that occurs, with a log ``training_curves``, and
        ``metrics_json`` and ``report_html``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    if metrics is None:
        metrics = evaluate(ground_truth, detections)
    params = metrics.get("params", {})
    iou_threshold = float(params.get("voc_iou_threshold", 0.5))
    rule = params.get("voc_rule", "voc")
    matching = f"{rule.upper()} matching, IoU {'>' if rule == 'voc' else '>='} {iou_threshold:g}"
    curves = precision_recall_curves(ground_truth, detections, iou_threshold=iou_threshold, rule=rule)
    written = {"pr_curves": out_dir / "pr_curves.png"}
    plot_pr_curves(curves, written["pr_curves"], matching=matching)

    matrix, names = confusion_matrix(
        ground_truth, detections, iou=confusion_iou, score_threshold=confusion_score
    )
    setting = f"IoU >= {confusion_iou:g}, score >= {confusion_score:g}"
    for key, normalize in (("confusion_matrix", False), ("confusion_matrix_normalized", True)):
        written[key] = out_dir / f"{key}.png"
        plot_confusion_matrix(matrix, names, written[key], normalize=normalize, subtitle=setting)
    written["confusion_matrix_json"] = save_metrics(
        {
            "names": names,
            "rows": "true class",
            "columns": "predicted class",
            "iou": confusion_iou,
            "score_threshold": confusion_score,
            "matrix": matrix,
        },
        out_dir / "confusion_matrix.json",
    )

    table = per_class_table(ground_truth, detections, metrics)
    written["per_class_json"] = save_metrics(table, out_dir / "per_class.json")
    heading = (
        "# Per-class results\n\nAP: COCO AP@[.5:.95]; AP50: COCO AP at IoU 0.5; VOC07 / VOC12: "
        f"11-point / area AP ({matching}); objects: ground-truth boxes "
        "that count; ignored: crowd or difficult boxes; detections: all scores.\n\n"
    )
    written["per_class_md"] = _write_text(
        out_dir / "per_class.md", heading + format_class_table_markdown(table)
    )

    errors = metrics.get("errors") or error_breakdown(ground_truth, detections)
    written["errors_json"] = save_metrics(errors, out_dir / "errors.json")
    written["errors_md"] = _write_text(out_dir / "errors.md", format_errors_markdown(errors))
    written["errors_png"] = out_dir / "errors.png"
    plot_error_breakdown(errors, written["errors_png"])
    if image_paths:
        galleries = write_error_galleries(
            ground_truth, detections, image_paths, out_dir, count=gallery_images
        )
        written.update({f"errors_{cause}": out_dir / entry["file"] for cause, entry in galleries.items()})

    if log_jsonl is not None:
        log = read_training_log(log_jsonl)
        if log:
            written["training_curves"] = out_dir / "training_curves.png"
            plot_training_curves(log, written["training_curves"])
    shown = {**metrics, "errors": errors}
    written["metrics_json"] = save_metrics(shown, out_dir / "metrics.json")
    written["report_html"] = write_html_report(out_dir, shown)
    return written


def evaluate_with_report(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    report_dir: str | Path | None = None,
    *,
    image_dir: str | Path | None = None,
) -> dict:
    """``evaluate()`` and the error breakdown (``metrics["errors"]``; inputs loaded and checked
    once), then, with ``report_dir``, ``write_evaluation_report()`` there; the metrics then carry
    ``report_dir``. With ``image_dir`` (the folder the ground truth's ``file_name`` entries are
    relative to), the report also holds the galleries of the worst images per error cause."""
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    metrics = evaluate(ground_truth, detections)
    metrics["errors"] = error_breakdown(ground_truth, detections)
    if report_dir is not None:
        image_paths = None
        if image_dir is not None:
            image_dir = Path(image_dir)
            if not image_dir.is_dir():
                raise FileNotFoundError(f"image folder not found: {image_dir}")
            image_paths = {
                int(im["id"]): image_dir / im["file_name"] for im in ground_truth.dataset["images"]
            }
        write_evaluation_report(ground_truth, detections, metrics, report_dir, image_paths=image_paths)
        metrics["report_dir"] = str(report_dir)
    return metrics


def default_report_dir(
    *, report: str | None = None, checkpoint: str | None = None, output: str | None = None
) -> Path | None:
    """Where ``detkit eval`` (tools/eval.py) writes its report: ``report=DIR`` when given; with a
    checkpoint, ``eval_<checkpoint name>/`` beside it (training's own report in the run folder
    stays as it was); otherwise ``<output name>_report/`` beside ``output=``; None (no report)
    without either. ``report=none`` turns it off."""
    if report is not None:
        return None if report.lower() in ("none", "false", "off", "") else Path(report)
    if checkpoint is not None:
        path = Path(checkpoint)
        return path.parent / f"eval_{path.stem}"
    if output is not None:
        path = Path(output)
        return path.parent / f"{path.stem}_report"
    return None
