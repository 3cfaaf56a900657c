"""Report helpers: confusion matrix, metrics table, atomic JSON, PR-curve PNG."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from detkit.evaluation import evaluate
from detkit.evaluation.report import (
    confusion_matrix,
    draw_pr_curves,
    format_confusion_matrix,
    format_metrics_table,
    precision_recall_curves,
    save_metrics,
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


def test_pr_curves_png(tmp_path, make_gt, make_dets):
    gt = make_gt([(1, 1, [0, 0, 40, 40]), (1, 2, [50, 50, 90, 90])], names=("cat", "dog", "bird"))
    dets = make_dets([(1, 1, [0, 0, 40, 40], 0.9), (1, 2, [0, 0, 10, 10], 0.8)])
    curves = precision_recall_curves(gt, dets)
    assert curves["bird"] is None
    assert curves["dog"].recall.tolist() == [0.0] and curves["dog"].precision.tolist() == [0.0]
    path = draw_pr_curves(curves, tmp_path / "pr.png", size=200)
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] == 200
    assert (image != 255).any()
