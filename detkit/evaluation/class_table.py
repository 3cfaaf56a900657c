"""The per-class table of an evaluation: AP, AP50, VOC07, VOC12, object and detection counts."""

from __future__ import annotations

import numpy as np

from detkit.evaluation.inputs import DetectionSet, GroundTruth

COLUMNS = ("AP", "AP50", "VOC07", "VOC12", "objects", "ignored", "detections")


def _defined(value) -> float | None:
    """None for a missing or undefined (pycocotools' -1) number."""
    return None if value is None or value < 0 else float(value)


def per_class_table(ground_truth: GroundTruth, detections: DetectionSet, metrics: dict) -> dict:
    """One row per class (ground-truth category order) and a mean row.

    Columns: ``AP`` (COCO AP@[.5:.95]), ``AP50`` (COCO AP at IoU 0.5), ``VOC07`` (11-point) and
    ``VOC12`` (area) AP from ``metrics`` (``evaluate()``'s result; None where undefined or absent),
    ``objects`` (ground-truth boxes that count), ``ignored`` (crowd / difficult boxes) and
    ``detections`` (of that class, any score).

    Returns:
        ``{"classes": [{"class": name, **columns}, ...], "mean": {"class": "mean", **columns}}``:
        the mean row averages each AP column over the classes where it is defined (so it equals
        the protocol's mAP) and sums the counts.
    """
    sources = {
        "AP": metrics.get("coco_per_class") or {},
        "AP50": metrics.get("coco_per_class_ap50") or {},
        "VOC07": (metrics.get("voc07") or {}).get("per_class") or {},
        "VOC12": (metrics.get("voc12") or {}).get("per_class") or {},
    }
    rows = []
    for category_id, name in zip(ground_truth.category_ids, ground_truth.category_names, strict=True):
        of_class = ground_truth.ann_category_ids == category_id
        row = {"class": name, **{column: _defined(sources[column].get(name)) for column in sources}}
        row["objects"] = int((of_class & ~ground_truth.ignore).sum())
        row["ignored"] = int((of_class & ground_truth.ignore).sum())
        row["detections"] = int((detections.category_ids == category_id).sum())
        rows.append(row)
    mean: dict = {"class": "mean"}
    for column in sources:
        values = [row[column] for row in rows if row[column] is not None]
        mean[column] = float(np.mean(values)) if values else None
    for column in ("objects", "ignored", "detections"):
        mean[column] = sum(row[column] for row in rows)
    return {"classes": rows, "mean": mean}


def format_class_table_markdown(table: dict) -> str:
    """``per_class_table()``'s result as a Markdown table; "n/a" where a number is undefined."""

    def cell(value) -> str:
        if value is None:
            return "n/a"
        return str(value) if isinstance(value, int) else f"{value:.3f}"

    header = "| class | " + " | ".join(COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(COLUMNS)
    lines = [header, rule]
    for row in [*table["classes"], table["mean"]]:
        name = f"**{row['class']}**" if row is table["mean"] else row["class"].replace("|", "\\|")
        lines.append(f"| {name} | " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"
