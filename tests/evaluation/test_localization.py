"""Single-object localisation metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from detkit.evaluation.localization import localization_metrics, localization_metrics_from_coco

# Image 0: 200 wide, 100 high; the prediction is the object moved 10 px right, right class.
#   normalised differences (0.05, 0, 0, 0); IoU = 30*40 / (1600 + 1600 - 1200) = 0.6.
# Image 1: 100 x 100; the prediction keeps the top half of the object, wrong class.
#   differences (0, -0.125, 0, -0.25); IoU = 1250 / 2500 = 0.5.
PRED = torch.tensor([[30.0, 10, 70, 50], [0, 0, 50, 25]])
GT = torch.tensor([[20.0, 10, 60, 50], [0, 0, 50, 50]])
SIZES = torch.tensor([[100, 200], [100, 100]])
HALF_BOX_DISTANCE = math.sqrt(0.125**2 + 0.25**2)


def test_metrics_by_hand() -> None:
    metrics = localization_metrics(PRED, torch.tensor([3, 1]), GT, torch.tensor([3, 2]), SIZES)
    assert metrics["images"] == 2
    assert metrics["classification_error"] == pytest.approx(0.5)
    assert metrics["centre_distance"] == pytest.approx((0.05 + 0.125) / 2)
    assert metrics["size_distance"] == pytest.approx(0.25 / 2)
    assert metrics["box_distance"] == pytest.approx((0.05 + HALF_BOX_DISTANCE) / 2)
    assert metrics["mean_iou"] == pytest.approx(0.6)  # the correctly classified image only
    assert metrics["mean_iou_all"] == pytest.approx(0.55)
    assert metrics["localization_accuracy"] == pytest.approx(0.5)


def test_perfect_prediction_and_no_correct_class() -> None:
    perfect = localization_metrics(GT, torch.tensor([1, 2]), GT, torch.tensor([1, 2]), SIZES)
    assert perfect["classification_error"] == 0 and perfect["box_distance"] == 0
    assert perfect["mean_iou"] == pytest.approx(1.0) and perfect["localization_accuracy"] == 1.0
    wrong = localization_metrics(GT, torch.tensor([2, 1]), GT, torch.tensor([1, 2]), SIZES)
    assert wrong["mean_iou"] is None and wrong["mean_iou_all"] == pytest.approx(1.0)
    assert wrong["localization_accuracy"] == 0.0


def test_mismatched_rows_are_rejected() -> None:
    with pytest.raises(ValueError, match="gt_boxes"):
        localization_metrics(PRED, torch.tensor([1, 1]), GT[:1], torch.tensor([1]), SIZES)


def _xywh(box: list[float]) -> list[float]:
    return [box[0], box[1], box[2] - box[0], box[3] - box[1]]


def test_from_coco_takes_the_best_result_and_counts_missing_and_skipped() -> None:
    ground_truth = {
        "images": [
            {"id": 10, "width": 200, "height": 100},
            {"id": 11, "width": 100, "height": 100},
            {"id": 12, "width": 100, "height": 100},  # no prediction: an error
            {"id": 13, "width": 100, "height": 100},  # two objects: not a single-object image
        ],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 3, "bbox": _xywh(GT[0].tolist()), "iscrowd": 0},
            {"id": 2, "image_id": 11, "category_id": 2, "bbox": _xywh(GT[1].tolist()), "iscrowd": 0},
            {"id": 3, "image_id": 12, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0},
            {"id": 4, "image_id": 13, "category_id": 1, "bbox": [0, 0, 10, 10], "iscrowd": 0},
            {"id": 5, "image_id": 13, "category_id": 1, "bbox": [50, 50, 10, 10], "iscrowd": 0},
        ],
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
    }
    results = [
        {"image_id": 10, "category_id": 3, "bbox": _xywh(PRED[0].tolist()), "score": 0.9},
        {"image_id": 10, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.2},  # lower score: ignored
        {"image_id": 11, "category_id": 1, "bbox": _xywh(PRED[1].tolist()), "score": 0.5},
        {"image_id": 13, "category_id": 1, "bbox": [0, 0, 10, 10], "score": 0.5},
    ]
    metrics = localization_metrics_from_coco(ground_truth, results)
    assert metrics["images"] == 3 and metrics["missing_predictions"] == 1 and metrics["skipped_images"] == 1
    assert metrics["classification_error"] == pytest.approx(2 / 3)
    assert metrics["localization_accuracy"] == pytest.approx(1 / 3)
    # Distances and IoUs over the two images with a prediction, as in test_metrics_by_hand.
    assert metrics["box_distance"] == pytest.approx((0.05 + HALF_BOX_DISTANCE) / 2)
    assert metrics["mean_iou"] == pytest.approx(0.6)
