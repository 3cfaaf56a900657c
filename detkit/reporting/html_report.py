"""``report.html``: one offline page for an evaluation, built from the files of its report folder
(a training run's folder, or the folder ``detkit eval`` writes its report into).

Sections: run summary, metric tables, the per-class table (sortable by any column), PR curves,
confusion matrix, error breakdown, galleries of the worst images per error cause, training
curves, and for training runs the prior coverage line and the data-check summary. A section
whose files are absent says so; pictures are linked relatively, so the folder stays portable.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from detkit.evaluation.coco import COCO_METRIC_KEYS
from detkit.evaluation.errors import CAUSES, SIZES
from detkit.reporting.html_parts import cell, escape, note, page, picture, table

SUMMARY_KEYS = (
    ("experiment", "experiment"),
    ("checkpoint", "checkpoint"),
    ("run_dir", "run folder"),
    ("split", "split"),
    ("iterations", "iterations"),
    ("train_seconds", "training time (s)"),
    ("train_images", "training images"),
    ("val_images", "validation images"),
    ("device", "device"),
    ("machine", "machine"),
    ("world_size", "processes"),
    ("eval_seconds", "evaluation time (s)"),
)


def _read_json(path: Path) -> dict | list | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def _data_description(folder: Path) -> str | None:
    """The data a run used, from its ``config.yaml``: name and where it lives."""
    config = folder / "config.yaml"
    if not config.is_file():
        return None
    import yaml

    data = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("data") or {}
    parts = [str(data.get("name", "?"))]
    for key in ("root", "yaml"):
        if data.get(key):
            parts.append(f"{key}={data[key]}")
    val = data.get("val") or {}
    for key in ("ann_file", "img_dir", "split"):
        if isinstance(val, dict) and val.get(key):
            parts.append(f"val.{key}={val[key]}")
    return ", ".join(parts)


def _summary(folder: Path, metrics: dict) -> str:
    rows = [[cell(label), cell(metrics[key], digits=1)] for key, label in SUMMARY_KEYS if key in metrics]
    data = _data_description(folder)
    if data:
        rows.insert(1, [cell("data"), cell(data)])
    counts = metrics.get("counts") or {}
    if counts:
        rows.append(
            [
                cell("evaluated"),
                cell(
                    f"{counts['images']} images, {counts['annotations']} objects, {counts['detections']} detections"
                ),
            ]
        )
    parts = [table(["", ""], rows)]
    coverage = _read_json(folder / "prior_coverage.json")
    if isinstance(coverage, dict):
        if coverage.get("coverage"):
            from detkit.priors.coverage import coverage_line

            parts.append(f"<p>Prior coverage: {escape(coverage_line(coverage['coverage']))}</p>")
        elif coverage.get("note"):
            parts.append(f"<p>Prior coverage: {escape(coverage['note'])}</p>")
        for warning in coverage.get("warning") or []:
            parts.append(f'<p class="warning">{escape(warning)}</p>')
    problems = folder / "data_problems.jsonl"
    if problems.is_file():
        kinds = Counter(
            json.loads(line).get("kind", "?")
            for line in problems.read_text(encoding="utf-8").splitlines()
            if line
        )
        text = ", ".join(f"{kind}: {n}" for kind, n in kinds.most_common()) or "no problems found"
        parts.append(f"<p>Data check: {escape(text)} (details in data_problems.jsonl)</p>")
    elif (folder / "config.yaml").is_file():  # a training run writes that file only when data has problems
        parts.append("<p>Data check: no problems found when the data was read.</p>")
    return "".join(parts)


def _metric_tables(metrics: dict) -> str:
    parts = []
    coco = metrics.get("coco")
    if coco:
        parts.append(table(list(COCO_METRIC_KEYS), [[cell(coco.get(k)) for k in COCO_METRIC_KEYS]]))
    voc = [
        (key, label)
        for key, label in (("voc07", "VOC07 mAP (11-point)"), ("voc12", "VOC12 mAP (area)"))
        if key in metrics
    ]
    if voc:
        iou = (metrics.get("params") or {}).get("voc_iou_threshold", 0.5)
        parts.append(table([label for _, label in voc], [[cell(metrics[key]["mAP"]) for key, _ in voc]]))
        parts.append(note(f"VOC at IoU {iou:g}; COCO AP averages IoU 0.50:0.95. n/a: nothing to score."))
    return "".join(parts) or note("No metrics in this folder.")


def class_table_html(classes: list[dict], mean: dict | None) -> str:
    """``per_class.json``'s rows as a sortable table (``id="per-class"``)."""
    columns = [key for key in classes[0] if key != "class"] if classes else []
    rows = [[cell(row["class"]), *(cell(row.get(c)) for c in columns)] for row in classes]
    footer = [cell("mean"), *(cell(mean.get(c)) for c in columns)] if mean else None
    return table(["class", *columns], rows, footer=footer, sortable=True, table_id="per-class")


def errors_html(errors: dict | None, folder: Path) -> str:
    """The breakdown table (AP points), the chart, and dAP per class (sortable)."""
    if not errors:
        return note(
            "No error breakdown in this folder: it was evaluated before detkit computed one. "
            "`detkit eval checkpoint=...` writes one."
        )
    points = lambda v: None if v is None else 100 * v  # noqa: E731
    rows = [
        [
            cell(cause),
            cell(errors["counts"][cause]),
            cell(points(errors["dAP"][cause]), digits=2),
            *(cell(errors["by_size"][cause][s]) for s in SIZES),
        ]
        for cause in CAUSES
    ]
    for key, label in (
        ("false_positives", "all false positives"),
        ("false_negatives", "all false negatives"),
    ):
        rows.append(
            [
                cell(label),
                cell(errors["counts"][key]),
                cell(points(errors[f"dAP_{key}"]), digits=2),
                *(cell(errors["by_size"][key][s]) for s in SIZES),
            ]
        )
    settings = errors["settings"]
    parts = [
        note(
            f"TIDE: each false positive and missed object has one cause (foreground IoU "
            f"{settings['foreground_iou']:g}, background IoU {settings['background_iou']:g}); dAP is the AP "
            f"(points, at IoU {settings['foreground_iou']:g}) gained when an oracle fixes that cause alone. "
            f"AP{100 * settings['foreground_iou']:.0f} as TIDE computes it: {100 * errors['ap']:.2f}."
        ),
        table(["cause", "count", "dAP", *SIZES], rows),
    ]
    if (folder / "errors.png").is_file():
        parts.append(picture("errors.png", "error breakdown chart"))
    per_class = [
        [
            cell(name),
            cell(points(row["ap"]), digits=2),
            *(cell(points(row["dAP"][c]), digits=2) for c in CAUSES),
        ]
        for name, row in errors["per_class"].items()
    ]
    parts.append("<h3>dAP per class</h3>")
    parts.append(table(["class", "AP", *CAUSES], per_class, sortable=True, table_id="errors-per-class"))
    return "".join(parts)


def _galleries(folder: Path) -> str:
    parts = []
    for cause in CAUSES:
        name = f"errors_{cause}.jpg"
        if (folder / name).is_file():
            link = f'<a href="{escape(name)}">{picture(name, f"worst images: {cause}")}</a>'
            parts.append(f"<h3>{escape(cause)}</h3>{link}")
    if not parts:
        return note("No galleries: no image files were given to the evaluation, or it found no errors.")
    legend = (
        "Green: true positives and the objects they found; white: objects not found; "
        "coloured: detections with this error (class and score), or missed objects. Click a picture for full size."
    )
    return note(legend) + "".join(parts)


def _pictures(folder: Path, names: list[tuple[str, str]], missing: str) -> str:
    found = [f"<div>{picture(name, alt)}</div>" for name, alt in names if (folder / name).is_file()]
    return f'<div class="pair">{"".join(found)}</div>' if found else note(missing)


def write_html_report(folder: str | Path, metrics: dict | None = None) -> Path:
    """Write ``report.html`` into ``folder`` from its report files; ``metrics`` defaults to the
    folder's ``metrics.json``. Returns the page's path."""
    folder = Path(folder)
    if metrics is None:
        metrics = _read_json(folder / "metrics.json")
        if not isinstance(metrics, dict):
            raise FileNotFoundError(f"no metrics.json in {folder}: not a run or evaluation report folder")
    table_data = _read_json(folder / "per_class.json")
    classes = class_table_html(table_data["classes"], table_data.get("mean")) if table_data else None
    sections = [
        ("summary", "Run summary", _summary(folder, metrics)),
        ("metrics", "Metrics", _metric_tables(metrics)),
        ("per-class", "Per class", classes or note("No per_class.json in this folder.")),
        ("pr-curves", "PR curves", _pictures(folder, [("pr_curves.png", "PR curves")], "No PR curves.")),
        (
            "confusion",
            "Confusion matrix",
            _pictures(
                folder,
                [
                    ("confusion_matrix.png", "confusion matrix"),
                    ("confusion_matrix_normalized.png", "normalised"),
                ],
                "No confusion matrix.",
            ),
        ),
        (
            "errors",
            "Error breakdown",
            errors_html(metrics.get("errors") or _read_json(folder / "errors.json"), folder),
        ),
        ("galleries", "Worst images", _galleries(folder)),
        (
            "training",
            "Training curves",
            _pictures(
                folder, [("training_curves.png", "training curves")], "No training log for this evaluation."
            ),
        ),
    ]
    title = f"detkit report: {metrics.get('experiment') or folder.resolve().name}"
    subtitle = str(metrics.get("checkpoint") or metrics.get("run_dir") or folder)
    path = folder / "report.html"
    path.write_text(page(title, subtitle, sections), encoding="utf-8")
    return path
