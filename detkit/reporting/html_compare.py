"""Two evaluations of the same validation data side by side, as one offline HTML page: the
summary metrics, per-class AP and the error breakdown of run A and run B, with B - A.

Each run is a report folder (its ``metrics.json`` and ``per_class.json``, as training and
``detkit eval`` write them). Pictures are linked relative to the page, so keep the page where
it was written, or both folders beside it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from detkit.evaluation.coco import COCO_METRIC_KEYS
from detkit.evaluation.errors import CAUSES
from detkit.reporting.html_parts import cell, escape, note, page, picture, table

PER_CLASS_COLUMNS = ("AP", "AP50", "VOC12")


def _load(folder: Path) -> tuple[dict, dict]:
    path = folder / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.json in {folder}: not a run or evaluation report folder")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        per_class_path = folder / "per_class.json"
        per_class = json.loads(per_class_path.read_text(encoding="utf-8")) if per_class_path.is_file() else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"{folder}: a report file is not valid JSON ({error})") from error
    return metrics, {row["class"]: row for row in per_class.get("classes", [])}


def _delta(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a == -1.0 or b == -1.0:
        return None
    return b - a


def _summary_rows(a: dict, b: dict) -> list[list[str]]:
    rows = []
    for key in COCO_METRIC_KEYS:
        x, y = (a.get("coco") or {}).get(key), (b.get("coco") or {}).get(key)
        rows.append([cell(f"COCO {key}"), cell(x), cell(y), cell(_delta(x, y), signed=True)])
    for key, label in (("voc07", "VOC07 mAP"), ("voc12", "VOC12 mAP")):
        x, y = (a.get(key) or {}).get("mAP"), (b.get(key) or {}).get("mAP")
        rows.append([cell(label), cell(x), cell(y), cell(_delta(x, y), signed=True)])
    return rows


def _class_rows(a: dict, b: dict) -> list[list[str]]:
    rows = []
    for name in dict.fromkeys([*a, *b]):
        row = [cell(name)]
        for column in PER_CLASS_COLUMNS:
            x, y = (a.get(name) or {}).get(column), (b.get(name) or {}).get(column)
            row += [cell(x), cell(y), cell(_delta(x, y), signed=True)]
        rows.append(row)
    return rows


def _error_rows(a: dict | None, b: dict | None) -> list[list[str]]:
    def points(errors: dict | None, cause: str) -> float | None:
        return None if not errors else 100 * errors["dAP"][cause]

    def count(errors: dict | None, cause: str) -> int | None:
        return None if not errors else errors["counts"][cause]

    rows = []
    for cause in CAUSES:
        x, y = points(a, cause), points(b, cause)
        n, m = count(a, cause), count(b, cause)
        rows.append(
            [
                cell(cause),
                cell(x, digits=2),
                cell(y, digits=2),
                cell(_delta(x, y), digits=2, signed=True),
                cell(n),
                cell(m),
                cell(None if n is None or m is None else m - n, digits=0, signed=True),
            ]
        )
    return rows


def write_comparison_html(run_a: str | Path, run_b: str | Path, output: str | Path) -> Path:
    """Write the comparison page of report folders ``run_a`` and ``run_b`` to ``output``."""
    run_a, run_b, output = Path(run_a), Path(run_b), Path(output)
    (metrics_a, classes_a), (metrics_b, classes_b) = _load(run_a), _load(run_b)
    output.parent.mkdir(parents=True, exist_ok=True)
    label_a, label_b = f"A: {run_a.resolve().name}", f"B: {run_b.resolve().name}"
    intro = [f"<p>{escape(label_a)} ({escape(run_a)})<br>{escape(label_b)} ({escape(run_b)})</p>"]
    counts_a, counts_b = metrics_a.get("counts") or {}, metrics_b.get("counts") or {}
    same = all(counts_a.get(k) == counts_b.get(k) for k in ("images", "annotations"))
    if not same:
        intro.append(
            '<p class="warning">The two evaluations did not see the same validation data '
            f"(A: {escape(counts_a.get('images'))} images, {escape(counts_a.get('annotations'))} objects; "
            f"B: {escape(counts_b.get('images'))} images, {escape(counts_b.get('annotations'))} objects): "
            "differences mix the models with the data.</p>"
        )
    summary = table(["metric", "A", "B", "B - A"], _summary_rows(metrics_a, metrics_b))
    class_headers = ["class"] + [
        f"{column} {side}" for column in PER_CLASS_COLUMNS for side in ("A", "B", "B - A")
    ]
    classes = table(class_headers, _class_rows(classes_a, classes_b), sortable=True, table_id="per-class")
    errors_a, errors_b = metrics_a.get("errors"), metrics_b.get("errors")
    if errors_a or errors_b:
        errors = table(
            ["cause", "dAP A", "dAP B", "dAP B - A", "count A", "count B", "count B - A"],
            _error_rows(errors_a, errors_b),
            sortable=True,
            table_id="errors",
        ) + note("dAP in AP points: what fixing the cause alone would add; a drop from A to B is progress.")
        charts = [
            f"<div><p>{escape(label)}</p>{picture(os.path.relpath(folder / 'errors.png', output.parent), label)}</div>"
            for folder, label in ((run_a, label_a), (run_b, label_b))
            if (folder / "errors.png").is_file()
        ]
        if charts:
            errors += f'<div class="pair">{"".join(charts)}</div>'
    else:
        errors = note("Neither evaluation has an error breakdown.")
    if not (errors_a and errors_b) and (errors_a or errors_b):
        errors += note("Only one of the two evaluations has an error breakdown; n/a marks the other.")
    sections = [
        ("runs", "Runs", "".join(intro)),
        ("metrics", "Metrics", summary),
        ("per-class", "Per class", classes if classes_a or classes_b else note("No per-class tables.")),
        ("errors", "Error breakdown", errors),
    ]
    output.write_text(page("detkit comparison", f"{label_a} vs {label_b}", sections), encoding="utf-8")
    return output
