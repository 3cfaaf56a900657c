"""Bad inputs get a clear error naming the file and the problem; evaluate()'s result shape."""

from __future__ import annotations

import json
import math

import pytest
import torch

from detkit.evaluation import COCO_METRIC_KEYS, detections_to_coco_results, evaluate, load_ground_truth


@pytest.fixture
def gt(make_gt):
    return make_gt([(1, 1, [0, 0, 40, 40]), (2, 2, [10, 10, 50, 60])], names=("cat", "dog"))


def _write(tmp_path, name, payload):
    path = tmp_path / name
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def test_result_shape(gt, make_dets):
    result = evaluate(gt, make_dets([(1, 1, [0, 0, 40, 40], 0.9), (2, 2, [10, 10, 50, 60], 0.8)]))
    assert list(result["coco"]) == list(COCO_METRIC_KEYS)
    assert set(result) >= {"coco", "voc07", "voc12", "coco_per_class", "counts", "params"}
    for protocol in ("voc07", "voc12"):
        assert set(result[protocol]) == {"mAP", "per_class"}
        assert list(result[protocol]["per_class"]) == ["cat", "dog"]
        assert result[protocol]["mAP"] == pytest.approx(1.0)
    assert result["counts"] == {"images": 2, "annotations": 2, "detections": 2}
    assert result["params"]["voc_iou_threshold"] == 0.5
    json.dumps(result, allow_nan=False)  # plain, NaN-free JSON


def test_empty_detections(gt):
    result = evaluate(gt, [])
    assert result["voc07"] == {"mAP": 0.0, "per_class": {"cat": 0.0, "dog": 0.0}}
    assert result["voc12"]["mAP"] == 0.0
    assert all(value in (0.0, -1.0) for value in result["coco"].values())
    assert result["counts"]["detections"] == 0


def test_voc_iou_threshold_is_passed_through(gt, make_dets):
    # [0,0,40,24] on [0,0,40,40]: IoU 0.6 -> a hit at 0.5, a miss at 0.7
    dets = make_dets([(1, 1, [0, 0, 40, 24], 0.9)])
    assert evaluate(gt, dets)["voc12"]["per_class"]["cat"] == pytest.approx(1.0)
    assert evaluate(gt, dets, iou_threshold_voc=0.7)["voc12"]["per_class"]["cat"] == 0.0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
            "image ids not in the ground truth",
        ),
        (
            {"image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 0.5},
            "category ids not in the ground truth",
        ),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, 1], "score": 0.5}, "list of 4 numbers"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, -3, 1], "score": 0.5}, "negative width or height"),
        ({"image_id": 1, "category_id": 1, "bbox": [0, 0, "a", 1], "score": 0.5}, "4 finite numbers"),
        (
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "high"},
            "score must be a finite number",
        ),
        (
            {"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": math.nan},
            "score must be a finite number",
        ),
        ({"image_id": 1.5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, "must be integers"),
        ({"image_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}, "missing category_id"),
        ([1, 1, [0, 0, 1, 1], 0.5], "not an object"),
    ],
)
def test_malformed_detections_file_is_named(tmp_path, gt, entry, message):
    good = {"image_id": 2, "category_id": 2, "bbox": [10, 10, 40, 50], "score": 0.9}
    path = _write(tmp_path, "dets.json", json.dumps([good, entry]))
    with pytest.raises(ValueError, match=message) as error:
        evaluate(gt, path)
    assert str(path) in str(error.value)
    if "ground truth" not in message:
        assert "detection 1" in str(error.value)  # the offending entry, by index


def test_in_memory_detections_are_named_too(gt):
    with pytest.raises(ValueError, match=r"detections \(list\): 1 detection\(s\) refer to image ids"):
        evaluate(gt, [{"image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])


def test_detections_file_must_be_a_list(tmp_path, gt):
    path = _write(tmp_path, "dets.json", {"annotations": []})
    with pytest.raises(ValueError, match="must be a JSON list") as error:
        evaluate(gt, path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("[]", "not COCO-format ground truth"),
        ({"images": [], "annotations": []}, "not COCO-format ground truth"),
        ("{not json", "not a valid JSON ground truth file"),
        (
            {
                "images": [{"id": 1}],
                "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}],
                "categories": [{"id": 1, "name": "cat"}],
            },
            "unknown image_id 2",
        ),
        (
            {
                "images": [{"id": 1}],
                "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, -1]}],
                "categories": [{"id": 1, "name": "cat"}],
            },
            "negative width or height",
        ),
        (
            {
                "images": [{"id": 1}],
                "annotations": [],
                "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "cat"}],
            },
            "category names are not unique",
        ),
    ],
)
def test_bad_ground_truth_file_is_named(tmp_path, payload, message):
    path = _write(tmp_path, "gt.json", payload)
    with pytest.raises(ValueError, match=message) as error:
        evaluate(path, [])
    assert str(path) in str(error.value)


def test_missing_files_are_named(tmp_path, gt):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        evaluate(tmp_path / "nowhere.json", [])
    with pytest.raises(FileNotFoundError, match="missing_dets.json"):
        evaluate(gt, str(tmp_path / "missing_dets.json"))


def test_ground_truth_boxes_become_xyxy(gt):
    loaded = load_ground_truth(gt)
    assert loaded.boxes.tolist() == [[0, 0, 40, 40], [10, 10, 50, 60]]
    assert loaded.category_names == ["cat", "dog"]


def test_detections_to_coco_results_maps_labels_and_boxes(gt):
    # labels 1..C map to the GT's category ids (here 11 and 42, not contiguous); xyxy -> xywh;
    # an inverted box gets zero size.
    outputs = [
        {
            "boxes": torch.tensor([[0.0, 0, 40, 40], [5, 5, 3, 9]]),
            "scores": torch.tensor([0.9, 0.2]),
            "labels": torch.tensor([2, 1]),
        },
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    results = detections_to_coco_results(outputs, image_ids=[7, 8], category_ids=[11, 42])
    assert results == [
        {"image_id": 7, "category_id": 42, "bbox": [0.0, 0.0, 40.0, 40.0], "score": pytest.approx(0.9)},
        {"image_id": 7, "category_id": 11, "bbox": [5.0, 5.0, 0.0, 4.0], "score": pytest.approx(0.2)},
    ]
    with pytest.raises(ValueError, match=r"labels must be in 1..2"):
        detections_to_coco_results([{**outputs[0], "labels": torch.tensor([0, 1])}], [7], [11, 42])
