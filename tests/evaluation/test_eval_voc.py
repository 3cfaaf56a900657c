"""VOC protocol: hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from detkit.evaluation import (
    ELEVEN_POINT_THRESHOLDS,
    average_precision_11point,
    average_precision_area,
    match_detections,
    precision_recall_curves,
    voc_evaluate,
)


def test_hand_case_three_gt_four_detections(make_gt, make_dets):
    # GT: image 1 has A=[0,0,10,10] and B=[20,0,30,10]; image 2 has C=[0,0,10,10].
    # Ranked detections: 0.9 exactly on A (TP), 0.8 on empty space in image 2 (FP),
    # 0.7 exactly on C (TP), 0.6 on empty space in image 1 (FP); B is never found.
    #   cumulative TP 1 1 2 2, FP 0 1 1 2
    #   recall    1/3 1/3 2/3 2/3
    #   precision 1   1/2 2/3 1/2      envelope: 1 1 2/3 1/2 (made non-increasing from the right)
    # VOC07: t = 0, .1, .2, .3 -> max precision at recall >= t is 1        (4 x 1)
    #        t = .4, .5, .6    -> recall >= t only at 2/3: max(2/3, 1/2)    (3 x 2/3 = 2)
    #        t = .7 ... 1.0    -> never reached: 0                           => AP = 6/11
    # VOC12: area = (1/3 - 0) * 1 + (2/3 - 1/3) * 2/3 = 1/3 + 2/9            => AP = 5/9
    gt = make_gt([(1, 1, [0, 0, 10, 10]), (1, 1, [20, 0, 30, 10]), (2, 1, [0, 0, 10, 10])])
    dets = make_dets(
        [
            (1, 1, [0, 0, 10, 10], 0.9),
            (2, 1, [50, 50, 60, 60], 0.8),
            (2, 1, [0, 0, 10, 10], 0.7),
            (1, 1, [50, 50, 60, 60], 0.6),
        ]
    )
    curve = precision_recall_curves(gt, dets)["cat"]
    np.testing.assert_allclose(curve.recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(curve.precision, [1, 1 / 2, 2 / 3, 1 / 2])
    result = voc_evaluate(gt, dets)
    assert result["voc07"]["per_class"]["cat"] == pytest.approx(6 / 11, abs=1e-12)
    assert result["voc12"]["per_class"]["cat"] == pytest.approx(5 / 9, abs=1e-12)
    assert result["voc12"]["mAP"] == pytest.approx(5 / 9, abs=1e-12)


def test_difficult_ground_truth_is_neither_true_nor_false_positive(make_gt, make_dets):
    # D is difficult. Two detections on D (0.95, 0.9) are both ignored (a difficult box is
    # never "taken"), then 0.8 finds A: precision stays 1 and the only positive is A.
    # Counting D as a miss or its detections as FPs would give AP < 1.
    gt = make_gt([(1, 1, [0, 0, 10, 10]), (1, 1, [40, 40, 60, 60], {"difficult": 1})])
    dets = make_dets(
        [(1, 1, [40, 40, 60, 60], 0.95), (1, 1, [41, 40, 60, 60], 0.9), (1, 1, [0, 0, 10, 10], 0.8)]
    )
    curve = precision_recall_curves(gt, dets)["cat"]
    assert curve.num_positives == 1
    np.testing.assert_allclose(curve.recall, [1.0])
    np.testing.assert_allclose(curve.precision, [1.0])
    result = voc_evaluate(gt, dets)
    assert result["voc07"]["mAP"] == pytest.approx(1.0)
    assert result["voc12"]["mAP"] == pytest.approx(1.0)


def test_crowd_is_ignored_like_difficult(make_gt, make_dets):
    gt = make_gt([(1, 1, [0, 0, 10, 10]), (1, 1, [40, 40, 60, 60], {"iscrowd": 1})])
    dets = make_dets([(1, 1, [40, 40, 60, 60], 0.95), (1, 1, [0, 0, 10, 10], 0.8)])
    assert voc_evaluate(gt, dets)["voc12"]["mAP"] == pytest.approx(1.0)


def test_duplicate_detection_is_a_false_positive():
    # The 0.9 detection takes the box; the 0.8 duplicate (IoU 0.9 with it) finds it taken -> FP;
    # the 0.95 one on nothing is FP. In input order: [TP, FP, FP].
    match = match_detections(
        gt_image_ids=np.array([7]),
        gt_boxes=np.array([[0.0, 0, 10, 10]]),
        gt_ignore=np.array([False]),
        det_image_ids=np.array([7, 7, 7]),
        det_boxes=np.array([[0.0, 0, 10, 10], [0.0, 0, 10, 9], [50.0, 50, 60, 60]]),
        det_scores=np.array([0.9, 0.8, 0.95]),
    )
    assert match.outcome.tolist() == [1, 0, 0]
    assert match.gt_index.tolist() == [0, -1, -1]


def _match_one(box, rule="voc", iou_threshold=0.5):
    return match_detections(
        gt_image_ids=np.array([1]),
        gt_boxes=np.array([[0.0, 0, 10, 10]]),
        gt_ignore=np.array([False]),
        det_image_ids=np.array([1]),
        det_boxes=np.array([box], dtype=np.float64),
        det_scores=np.array([0.5]),
        iou_threshold=iou_threshold,
        rule=rule,
    ).outcome.tolist()


def test_iou_exactly_at_threshold_is_a_miss_for_voc_and_a_match_for_coco():
    # GT [0,0,10,10] (area 100). [0,0,10,5]: inter 50 / union 100 = 0.5 exactly.
    # [0,0,20,10]: inter 100 / union 200 = 0.5 exactly. [0,0,10,5.1]: IoU 0.51.
    # py-faster-rcnn's voc_eval needs IoU > 0.5 (a FP here); COCOeval accepts IoU >= 0.5.
    for box in ([0, 0, 10, 5], [0, 0, 20, 10]):
        assert _match_one(box, rule="voc") == [0], box
        assert _match_one(box, rule="coco") == [1], box
    assert _match_one([0, 0, 10, 5.1], rule="voc") == [1]
    assert _match_one([0, 0, 10, 4.9], rule="coco") == [0]
    assert _match_one([0, 0, 10, 5.1], iou_threshold=0.6) == [0]


def test_class_without_ground_truth_is_left_out_of_the_mean(make_gt, make_dets):
    # "dog" has detections but no GT; "bird" has only a difficult object: both are None and
    # the mean is cat's AP alone (0.5: one FP ranked above the single TP).
    gt = make_gt(
        [(1, 1, [0, 0, 10, 10]), (1, 3, [30, 30, 40, 40], {"difficult": 1})],
        names=("cat", "dog", "bird"),
    )
    dets = make_dets(
        [(1, 1, [50, 50, 60, 60], 0.9), (1, 1, [0, 0, 10, 10], 0.8), (1, 2, [0, 0, 10, 10], 0.7)]
    )
    result = voc_evaluate(gt, dets)
    for protocol in ("voc07", "voc12"):
        assert result[protocol]["per_class"] == {"cat": pytest.approx(0.5), "dog": None, "bird": None}
        assert result[protocol]["mAP"] == pytest.approx(0.5)


def test_no_ground_truth_at_all_gives_undefined_map(make_gt, make_dets):
    gt = make_gt([], image_ids=[1])
    result = voc_evaluate(gt, make_dets([(1, 1, [0, 0, 5, 5], 0.5)]))
    assert result["voc12"] == {"mAP": -1.0, "per_class": {"cat": None}}


def test_voc_rule_versus_coco_rule():
    # A=[0,0,10,10], B=[2,0,12,10]. 0.9 sits on A (TP). 0.8 at [0.5,0,10.5,10] overlaps A
    # (IoU 95/105) more than B (IoU 85/115 = 0.739). The reference (voc_eval) looks at its best
    # box A, finds it taken -> FP; COCOeval takes the best *unmatched* box, B -> TP.
    kwargs = dict(
        gt_image_ids=np.array([1, 1]),
        gt_boxes=np.array([[0.0, 0, 10, 10], [2.0, 0, 12, 10]]),
        gt_ignore=np.array([False, False]),
        det_image_ids=np.array([1, 1]),
        det_boxes=np.array([[0.0, 0, 10, 10], [0.5, 0, 10.5, 10]]),
        det_scores=np.array([0.9, 0.8]),
    )
    assert match_detections(**kwargs).outcome.tolist() == [1, 0]
    assert match_detections(**kwargs, rule="voc").outcome.tolist() == [1, 0]
    assert match_detections(**kwargs, rule="coco").outcome.tolist() == [1, 1]
    with pytest.raises(ValueError, match="unknown matching rule"):
        match_detections(**kwargs, rule="devkit")


def test_eleven_point_thresholds_are_the_references_floats():
    # The reference loops over np.arange(0., 1.1, 0.1); its 0.3, 0.6 and 0.7 are one ulp above.
    np.testing.assert_array_equal(ELEVEN_POINT_THRESHOLDS, np.arange(0.0, 1.1, 0.1))
    assert ELEVEN_POINT_THRESHOLDS[3] > 3 / 10 and ELEVEN_POINT_THRESHOLDS[6] > 6 / 10


@pytest.mark.parametrize(
    ("found", "reached"),
    [
        (3, 3),  # recall 3/10 == 0.3 < 0.30000000000000004: thresholds 0, .1, .2 only
        (4, 5),  # recall 0.4 reaches 0, .1, .2, .3, .4
        (6, 6),  # recall 0.6 misses 0.6000000000000001
        (7, 7),  # recall 0.7 misses 0.7000000000000001
        (8, 9),  # recall 0.8 reaches 0.8 exactly
        (10, 11),
    ],
)
def test_eleven_point_at_recalls_on_the_grid(found, reached):
    # 10 positives, `found` TPs at precision 1: AP07 = (thresholds reached) / 11, where
    # "reached" counts the reference's float thresholds <= found / 10.
    recall = np.arange(1, found + 1) / 10
    assert average_precision_11point(recall, np.ones(found)) == pytest.approx(reached / 11, abs=1e-15)
    assert average_precision_area(recall, np.ones(found)) == pytest.approx(found / 10, abs=1e-15)


def test_empty_curve_has_zero_ap():
    assert average_precision_11point(np.zeros(0), np.zeros(0)) == 0.0
    assert average_precision_area(np.zeros(0), np.zeros(0)) == 0.0
