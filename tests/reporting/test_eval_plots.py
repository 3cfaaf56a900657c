"""The pictures' content, read back from the arrays each plotting function returns."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.evaluation import precision_recall_curves, voc_evaluate
from detkit.reporting.plots import (
    normalize_rows,
    plot_confusion_matrix,
    plot_pr_curves,
    plot_training_curves,
    pr_plot_data,
)
from detkit.reporting.training_log import Series, TrainingLog


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pr_curve_points_end_points_and_area(tmp_path, make_gt, make_dets):
    # cat: A, B (image 1), C (image 2). Ranked: 0.9 on A (TP), 0.8 on nothing (FP), 0.7 on C
    # (TP), 0.6 on nothing (FP); B is never found; dog has one object found by one detection;
    # bird has no ground truth and gets no panel.
    #   recall 1/3 1/3 2/3 2/3, precision 1 1/2 2/3 1/2, envelope 1 2/3 2/3 1/2
    # The shaded envelope starts at (0, 1) and its area is VOC12 AP = 1/3 + 1/3 * 2/3 = 5/9.
    gt = make_gt(
        [(1, 1, [0, 0, 10, 10]), (1, 1, [20, 0, 30, 10]), (2, 1, [0, 0, 10, 10]), (2, 2, [0, 0, 50, 50])],
        names=("cat", "dog", "bird"),
    )
    dets = make_dets(
        [
            (1, 1, [0, 0, 10, 10], 0.9),
            (2, 1, [50, 50, 60, 60], 0.8),
            (2, 1, [0, 0, 10, 10], 0.7),
            (1, 1, [50, 50, 60, 60], 0.6),
            (2, 2, [0, 0, 50, 50], 0.4),
        ]
    )
    curves = precision_recall_curves(gt, dets)
    drawn = plot_pr_curves(curves, tmp_path / "pr.png")
    assert _is_png(tmp_path / "pr.png")
    assert list(drawn) == ["cat", "dog"]
    cat = drawn["cat"]
    np.testing.assert_allclose(cat.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(cat.precision, [1, 1 / 2, 2 / 3, 1 / 2])
    assert (cat.recall[-1], cat.precision[-1]) == pytest.approx((2 / 3, 1 / 2))  # 2 of 3 found, 2 of 4 right
    np.testing.assert_allclose(cat.step_recall, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(cat.step_precision, [1, 1, 2 / 3, 2 / 3, 1 / 2])
    assert cat.area == pytest.approx(5 / 9, abs=1e-12)
    assert drawn["dog"].area == pytest.approx(1.0) and drawn["dog"].step_recall[-1] == 1.0
    voc12 = voc_evaluate(gt, dets)["voc12"]["per_class"]
    assert {name: item.area for name, item in drawn.items()} == pytest.approx(
        {"cat": voc12["cat"], "dog": voc12["dog"]}
    )


def test_pr_curve_of_a_class_without_detections(tmp_path, make_gt):
    gt = make_gt([(1, 1, [0, 0, 10, 10])])
    item = pr_plot_data(precision_recall_curves(gt, [])["cat"])
    assert item.area == 0.0 and len(item.recall) == 0 and item.step_recall.tolist() == [0.0]
    assert list(plot_pr_curves({"cat": None}, tmp_path / "none.png")) == []  # no panel, still a picture
    assert _is_png(tmp_path / "none.png")


def test_confusion_matrix_picture_counts_and_normalised(tmp_path):
    # rows true (cat, dog, bird, background), columns predicted: 3 cats found, 1 taken for a
    # dog, 1 missed; 2 dogs found; bird has neither objects nor detections (left out);
    # 4 detections of nothing: 3 "cat", 1 "dog".
    matrix = np.array([[3, 1, 0, 1], [0, 2, 0, 0], [0, 0, 0, 0], [3, 1, 0, 0]])
    names = ["cat", "dog", "bird", "background"]
    counts, shown = plot_confusion_matrix(matrix, names, tmp_path / "counts.png")
    assert shown == ["cat", "dog", "background"]
    np.testing.assert_array_equal(counts, [[3, 1, 1], [0, 2, 0], [3, 1, 0]])
    fractions, _ = plot_confusion_matrix(matrix, names, tmp_path / "normalized.png", normalize=True)
    np.testing.assert_allclose(fractions, [[0.6, 0.2, 0.2], [0, 1, 0], [0.75, 0.25, 0]])
    assert _is_png(tmp_path / "counts.png") and _is_png(tmp_path / "normalized.png")
    # a row without anything stays zero instead of dividing by zero
    np.testing.assert_array_equal(normalize_rows(np.array([[0, 0], [1, 3]])), [[0, 0], [0.25, 0.75]])


def test_confusion_matrix_picture_at_many_classes(tmp_path):
    rng = np.random.default_rng(0)
    size = 81  # 80 classes and background: every class present
    matrix = np.diag(rng.integers(1, 200, size)) + (rng.random((size, size)) < 0.02)
    values, shown = plot_confusion_matrix(matrix, [f"c{i}" for i in range(size)], tmp_path / "big.png")
    assert len(shown) == size and values.sum() == matrix.sum()


def test_training_curves_series(tmp_path):
    log = TrainingLog(
        losses={
            "total_loss": Series(np.array([10, 20, 30]), np.array([3.0, 2.0, 1.0])),
            "loss_cls": Series(np.array([10, 20, 30]), np.array([2.0, 1.5, 0.5])),
        },
        learning_rate=Series(np.array([10, 20, 30]), np.array([0.001, 0.01, 0.01])),
        validation={"VOC12 mAP": Series(np.array([30]), np.array([0.4]))},
    )
    plotted = plot_training_curves(log, tmp_path / "curves.png")
    assert list(plotted) == ["losses", "learning rate", "validation"]
    np.testing.assert_array_equal(plotted["losses"]["total_loss"], [[10, 20, 30], [3, 2, 1]])
    np.testing.assert_array_equal(plotted["validation"]["VOC12 mAP"], [[30], [0.4]])
    assert _is_png(tmp_path / "curves.png")
    only_eval = TrainingLog(validation={"COCO AP": Series(np.array([5]), np.array([0.2]))})
    assert list(plot_training_curves(only_eval, tmp_path / "eval.png")) == ["validation"]
    with pytest.raises(ValueError, match="no losses"):
        plot_training_curves(TrainingLog(), tmp_path / "empty.png")
