"""Report helpers: confusion matrix, metrics table, atomic JSON, the report folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from detkit.evaluation import evaluate
from detkit.evaluation.class_table import per_class_table
from detkit.evaluation.inputs import load_detections, load_ground_truth
from detkit.reporting.report import (
    confusion_matrix,
    default_report_dir,
    evaluate_with_report,
    format_confusion_matrix,
    format_metrics_table,
    save_metrics,
    write_evaluation_report,
)


def test_confusion_matrix_hand_case(make_gt, make_dets):
    # image 1: cat A, dog B. image 2: cat C, difficult dog D.
    #   0.9 "dog" on A        -> true cat, predicted dog
    #   0.8 "dog" on B        -> dog / dog
    #   0.7 "cat" on nothing  -> background / cat (a false positive)
    #   0.9 "cat" on D        -> on a difficult object: not counted
    #   0.1 "cat" on C        -> under the 0.3 score threshold, so C is missed: cat / background
    gt = make_gt(
        [
            (1, 1, [0, 0, 40, 40]),
            (1, 2, [100, 100, 150, 150]),
            (2, 1, [0, 0, 30, 30]),
            (2, 2, [60, 60, 90, 90], {"difficult": 1}),
        ],
        names=("cat", "dog"),
    )
    dets = make_dets(
        [
            (1, 2, [0, 0, 40, 40], 0.9),
            (1, 2, [100, 100, 150, 150], 0.8),
            (1, 1, [200, 200, 220, 220], 0.7),
            (2, 1, [60, 60, 90, 90], 0.9),
            (2, 1, [0, 0, 30, 30], 0.1),
        ]
    )
    matrix, names = confusion_matrix(gt, dets, iou=0.5, score_threshold=0.3)
    assert names == ["cat", "dog", "background"]
    np.testing.assert_array_equal(matrix, [[0, 1, 1], [0, 1, 0], [1, 0, 0]])
    # lowering the threshold lets the 0.1 detection find C
    matrix, _ = confusion_matrix(gt, dets, iou=0.5, score_threshold=0.05)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [1, 0, 0]])
    text = format_confusion_matrix(matrix, names)
    assert text.splitlines()[0].split()[-3:] == ["cat", "dog", "background"]
    assert text.splitlines()[1].split() == ["cat", "1", "1", "0"]


def test_confusion_matrix_without_detections(make_gt):
    gt = make_gt([(1, 1, [0, 0, 10, 10]), (1, 1, [20, 20, 30, 30])])
    matrix, names = confusion_matrix(gt, [])
    np.testing.assert_array_equal(matrix, [[0, 2], [0, 0]])


def test_metrics_table_shows_names_and_numbers(make_gt, make_dets):
    gt = make_gt(
        [(1, 1, [0, 0, 40, 40]), (2, 2, [10, 10, 50, 60])], names=("traffic light", "dog", "unicorn")
    )
    # dog: one FP ranked above the TP -> VOC AP 0.5; cat-like "traffic light" perfect; unicorn absent
    dets = make_dets(
        [(1, 1, [0, 0, 40, 40], 0.9), (1, 2, [200, 200, 240, 240], 0.8), (2, 2, [10, 10, 50, 60], 0.7)]
    )
    metrics = evaluate(gt, dets)
    table = format_metrics_table(metrics)
    for key in ("AP50", "ARl", "VOC07", "VOC12"):
        assert key in table
    rows = {
        line[:15].strip(): line[15:].split()
        for line in table.splitlines()
        if line.startswith(("traffic", "dog", "unicorn"))
    }
    assert rows["traffic light"] == ["1.000", "1.000", "1.000"]
    assert rows["dog"] == ["0.500", "0.500", f"{metrics['coco_per_class']['dog']:.3f}"]
    assert rows["unicorn"] == ["n/a", "n/a", "n/a"]
    assert f"{metrics['coco']['AP']:.3f}" in table
    assert f"{metrics['voc12']['mAP']:.3f}" in table


def test_save_metrics_is_strict_json_and_atomic(tmp_path):
    path = tmp_path / "run" / "metrics.json"
    metrics = {
        "coco": {"AP": np.float32(0.25)},
        "loss": math.nan,
        "curve": np.arange(3),
        "per_class": {"x": None},
    }
    assert save_metrics(metrics, path) == path
    assert json.loads(path.read_text()) == {
        "coco": {"AP": 0.25},
        "loss": None,
        "curve": [0, 1, 2],
        "per_class": {"x": None},
    }
    # a failed write leaves the previous file intact and no temporary behind
    with pytest.raises(TypeError):
        save_metrics({"bad": object()}, path)
    assert json.loads(path.read_text())["coco"] == {"AP": 0.25}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def _two_class_case(make_gt, make_dets):
    """cat: A, B (image 1), C (image 2), a crowd box (image 2); dog: D (image 2); bird: nothing.
    cat detections 0.9 on A, 0.8 on nothing, 0.7 on C, 0.6 on nothing; dog 0.5 on D."""
    gt = make_gt(
        [
            (1, 1, [0, 0, 10, 10]),
            (1, 1, [20, 0, 30, 10]),
            (2, 1, [0, 0, 10, 10]),
            (2, 1, [50, 50, 90, 90], {"iscrowd": 1}),
            (2, 2, [100, 100, 140, 140]),
        ],
        names=("cat", "dog", "bird"),
    )
    dets = make_dets(
        [
            (1, 1, [0, 0, 10, 10], 0.9),
            (2, 1, [200, 200, 210, 210], 0.8),
            (2, 1, [0, 0, 10, 10], 0.7),
            (1, 1, [200, 200, 210, 210], 0.6),
            (2, 2, [100, 100, 140, 140], 0.5),
        ]
    )
    return gt, dets


def test_report_folder_content(tmp_path, make_gt, make_dets):
    gt, dets = _two_class_case(make_gt, make_dets)
    log = tmp_path / "log.jsonl"
    log.write_text(
        json.dumps({"type": "train", "iter": 10, "total_loss": 2.0, "loss_cls": 1.5, "lr": 0.01})
        + "\n"
        + json.dumps({"type": "eval", "iter": 10, "metrics": {"voc12": {"mAP": 0.4}}})
        + "\n"
    )
    metrics = evaluate(gt, dets)
    written = write_evaluation_report(gt, dets, metrics, tmp_path / "report", log_jsonl=log)
    assert set(written) == {
        "pr_curves",
        "confusion_matrix",
        "confusion_matrix_normalized",
        "confusion_matrix_json",
        "per_class_md",
        "per_class_json",
        "errors_md",
        "errors_json",
        "errors_png",
        "training_curves",
        "metrics_json",
        "report_html",
    }
    for path in written.values():
        assert path.parent == tmp_path / "report" and path.stat().st_size > 0
    for key in ("pr_curves", "confusion_matrix", "confusion_matrix_normalized", "training_curves"):
        assert written[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", key

    # the tables hold the numbers the evaluation computed
    table = json.loads(written["per_class_json"].read_text())
    assert [row["class"] for row in table["classes"]] == ["cat", "dog", "bird"]
    cat = table["classes"][0]
    assert cat["VOC12"] == pytest.approx(5 / 9) and cat["VOC07"] == pytest.approx(6 / 11)
    assert (cat["objects"], cat["ignored"], cat["detections"]) == (3, 1, 4)
    assert table["mean"]["VOC12"] == pytest.approx(metrics["voc12"]["mAP"])
    assert table["mean"]["AP"] == pytest.approx(metrics["coco"]["AP"])
    markdown = written["per_class_md"].read_text()
    assert "| cat | " in markdown and "| 0.556 |" in markdown
    assert "| bird | n/a | n/a | n/a | n/a | 0 | 0 | 0 |" in markdown

    saved = json.loads(written["confusion_matrix_json"].read_text())
    matrix, names = confusion_matrix(gt, dets)
    assert saved["names"] == names == ["cat", "dog", "bird", "background"]
    assert saved["matrix"] == matrix.tolist()
    # cat: A and C found (0.9, 0.7 >= 0.3), B missed; two cat detections of nothing; dog found
    assert matrix.tolist() == [[2, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0]]


def test_report_without_log_or_metrics(tmp_path, make_gt, make_dets):
    gt, dets = _two_class_case(make_gt, make_dets)
    written = write_evaluation_report(gt, dets, None, tmp_path)
    assert "training_curves" not in written and not (tmp_path / "training_curves.png").exists()
    # metrics=None: computed inside, so the table is the one built from evaluate()'s result
    loaded = load_ground_truth(gt)
    expected = per_class_table(loaded, load_detections(dets, loaded), evaluate(gt, dets))
    assert json.loads(written["per_class_json"].read_text()) == expected


def test_evaluate_with_report(tmp_path, make_gt, make_dets):
    gt, dets = _two_class_case(make_gt, make_dets)
    metrics = evaluate_with_report(gt, dets, tmp_path / "r")
    assert metrics["report_dir"] == str(tmp_path / "r") and (tmp_path / "r" / "pr_curves.png").is_file()
    assert "report_dir" not in evaluate_with_report(gt, dets)


def test_default_report_dir():
    assert default_report_dir(report="x/y", checkpoint="runs/a/best.pt") == Path("x/y")
    assert default_report_dir(report="none", output="m.json") is None
    assert default_report_dir(checkpoint="runs/a/best.pt", output="m.json") == Path("runs/a/eval_best")
    assert default_report_dir(output="out/metrics.json") == Path("out/metrics_report")
    assert default_report_dir() is None
