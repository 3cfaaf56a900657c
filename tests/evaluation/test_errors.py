"""Error breakdown (TIDE): one hand-made case per cause, with the AP each oracle adds worked out
by hand (101-point AP: the share of the recall points 0, 0.01, ..., 1 reached, times precision)."""

from __future__ import annotations

import warnings

import pytest

from detkit.evaluation.errors import CAUSES, average_precision_101, error_breakdown

A = [0, 0, 100, 100]
B = [200, 200, 300, 300]
HALF_RECALL_AP = 51 / 101  # precision 1 up to recall 0.5, nothing beyond: 51 of the 101 points


def only(result: dict, cause: str) -> None:
    """Every cause but ``cause`` neither counts nor gains anything."""
    for other in CAUSES:
        if other != cause:
            assert result["counts"][other] == 0, other
            assert result["dAP"][other] == pytest.approx(0.0, abs=1e-12), other


def test_average_precision_101_hand_values():
    assert average_precision_101([0.9, 0.8], [True, True], 2) == pytest.approx(1.0)
    assert average_precision_101([0.9], [True], 2) == pytest.approx(HALF_RECALL_AP)
    # FP then TP with one object: precision 0.5 at every recall point
    assert average_precision_101([0.9, 0.8], [False, True], 1) == pytest.approx(0.5)
    assert average_precision_101([], [], 3) == 0.0


def test_classification_error(make_gt, make_dets):
    # A "dog" detection exactly on a cat: turned into a cat by the oracle, both classes perfect.
    gt = make_gt([(1, 1, A), (1, 2, B)], names=("cat", "dog"))
    dets = make_dets([(1, 2, A, 0.9), (1, 2, B, 0.8)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["classification"] == 1
    only(result, "classification")
    assert result["counts"]["false_negatives"] == 1  # the cat is not found, but it is not "missed"
    assert result["ap"] == pytest.approx((0.0 + 0.5) / 2)
    assert result["dAP"]["classification"] == pytest.approx(1.0 - 0.25)
    assert result["per_class"]["cat"]["dAP"]["classification"] == pytest.approx(1.0)
    assert result["per_class"]["dog"]["counts"]["classification"] == 1


def test_localisation_error(make_gt, make_dets):
    # IoU of [50, 0, 150, 100] with A is 1/3: between the background (0.1) and foreground (0.5) IoU.
    gt = make_gt([(1, 1, A), (1, 1, B)])
    dets = make_dets([(1, 1, [50, 0, 150, 100], 0.9), (1, 1, B, 0.8)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["localisation"] == 1
    only(result, "localisation")
    # FP then TP of 2 objects: precision 0.5 up to recall 0.5 -> 51 points at 0.5
    assert result["ap"] == pytest.approx(0.5 * HALF_RECALL_AP)
    assert result["dAP"]["localisation"] == pytest.approx(1.0 - 0.5 * HALF_RECALL_AP)


def test_localisation_oracle_fixes_only_the_best_scoring_error_per_object(make_gt, make_dets):
    gt = make_gt([(1, 1, A)])
    dets = make_dets([(1, 1, [50, 0, 150, 100], 0.9), (1, 1, [0, 50, 100, 150], 0.6)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["localisation"] == 2
    assert result["ap"] == 0.0
    # 0.9 becomes the true positive, 0.6 is removed rather than kept as a second hit
    assert result["dAP"]["localisation"] == pytest.approx(1.0)


def test_both_error(make_gt, make_dets):
    # A dog detection with IoU 1/3 on a cat: wrong class and poorly placed; the cat is missed.
    gt = make_gt([(1, 1, A), (1, 2, B)], names=("cat", "dog"))
    dets = make_dets([(1, 2, [50, 0, 150, 100], 0.9), (1, 2, B, 0.8)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["both"] == 1
    assert result["counts"]["missed"] == 1
    assert result["ap"] == pytest.approx(0.25)
    assert result["dAP"]["both"] == pytest.approx(0.5 - 0.25)  # dog becomes perfect, cat stays 0
    # without its only object, cat has neither objects nor detections and leaves the mean
    assert result["dAP"]["missed"] == pytest.approx(0.5 - 0.25)
    for cause in ("classification", "localisation", "duplicate", "background"):
        assert result["counts"][cause] == 0 and result["dAP"][cause] == 0.0


def test_duplicate_error(make_gt, make_dets):
    gt = make_gt([(1, 1, A), (1, 1, B)])
    dets = make_dets([(1, 1, A, 0.9), (1, 1, [0, 0, 100, 90], 0.8), (1, 1, B, 0.7)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["duplicate"] == 1
    only(result, "duplicate")
    # TP, FP, TP: precision 1 up to recall 0.5 (51 points), then 2/3 up to recall 1 (50 points)
    ap = (51 + 50 * 2 / 3) / 101
    assert result["ap"] == pytest.approx(ap)
    assert result["dAP"]["duplicate"] == pytest.approx(1.0 - ap)


def test_background_error(make_gt, make_dets):
    # One detection far from every object, one on an image without objects.
    gt = make_gt([(1, 1, A)], image_ids=[1, 2])
    dets = make_dets([(2, 1, A, 0.95), (1, 1, [400, 400, 450, 450], 0.9), (1, 1, A, 0.8)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["background"] == 2
    only(result, "background")
    assert result["ap"] == pytest.approx(1 / 3)
    assert result["dAP"]["background"] == pytest.approx(2 / 3)


def test_missed_error_and_sizes(make_gt, make_dets):
    small = [200, 200, 220, 220]  # 400 px² < 32²
    gt = make_gt([(1, 1, A), (1, 1, small)])
    dets = make_dets([(1, 1, A, 0.9)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["missed"] == 1
    only(result, "missed")
    assert result["ap"] == pytest.approx(HALF_RECALL_AP)
    assert result["dAP"]["missed"] == pytest.approx(1.0 - HALF_RECALL_AP)
    assert result["dAP_false_negatives"] == pytest.approx(1.0 - HALF_RECALL_AP)
    assert result["by_size"]["missed"] == {"small": 1, "medium": 0, "large": 0}
    assert result["by_size"]["false_negatives"] == {"small": 1, "medium": 0, "large": 0}


def test_false_positives_by_size_and_perfect_precision(make_gt, make_dets):
    gt = make_gt([(1, 1, A)])
    dets = make_dets(
        [
            (1, 1, [300, 300, 350, 350], 0.9),  # 2500 px²: medium background error
            (1, 1, [300, 0, 420, 100], 0.85),  # 12000 px²: large background error
            (1, 1, A, 0.8),  # 10000 px²: large, but a true positive
        ]
    )
    result = error_breakdown(gt, dets)
    assert result["by_size"]["false_positives"] == {"small": 0, "medium": 1, "large": 1}
    assert result["counts"]["true_positives"] == 1 and result["counts"]["false_positives"] == 2
    assert result["dAP_false_positives"] == pytest.approx(1.0 - 1 / 3)


def test_detection_in_a_crowd_is_not_an_error(make_gt, make_dets):
    gt = make_gt([(1, 1, A), (1, 1, B, {"iscrowd": 1})])
    dets = make_dets([(1, 1, A, 0.9), (1, 1, [210, 210, 260, 260], 0.95)])
    result = error_breakdown(gt, dets)
    assert result["counts"]["ignored"] == 1
    assert result["counts"]["false_positives"] == 0
    assert result["ap"] == pytest.approx(1.0)


def test_detections_beyond_max_detections_are_left_out(make_gt, make_dets):
    gt = make_gt([(1, 1, A)])
    dets = make_dets([(1, 1, [400, 400, 450, 450], 0.9), (1, 1, A, 0.8)])
    result = error_breakdown(gt, dets, max_detections=1)
    assert result["counts"]["ignored"] == 1
    assert result["counts"]["missed"] == 1 and result["counts"]["background"] == 1


def test_bad_detections_file_is_named(tmp_path, make_gt):
    bad = tmp_path / "dets.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="dets.json"):
        error_breakdown(make_gt([(1, 1, A)]), bad)


def test_no_detections_and_no_objects_are_answered_quietly(make_gt, make_dets):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        missed = error_breakdown(make_gt([(1, 1, A), (1, 1, B)]), [])
        assert missed["counts"]["missed"] == 2 and missed["ap"] == 0.0
        assert missed["dAP"]["missed"] == 0.0  # nothing left to score once every object is removed
        empty = error_breakdown(make_gt([], image_ids=[1]), make_dets([(1, 1, A, 0.9)]))
        assert empty["counts"]["background"] == 1 and empty["ap"] == 0.0
        assert empty["per_class"]["cat"]["dAP"]["background"] is None
