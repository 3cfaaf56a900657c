"""COCO protocol: the COCO API demo's published numbers, per-class AP, edge cases, backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.evaluation import COCO_METRIC_KEYS, coco_evaluate, evaluate
from detkit.evaluation.coco import resolve_backend

COCO100 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco_val2014_100"
GT_FILE = COCO100 / "instances_val2014_100.json"
RESULTS_FILE = COCO100 / "fakebbox100_results.json"

# pycocotools on the demo pair, full precision, as published in the data folder's README.
PUBLISHED = dict(
    zip(
        COCO_METRIC_KEYS,
        (
            0.5045806987249628,
            0.6969727247299577,
            0.5729816669904824,
            0.5856257209410443,
            0.5193996948036719,
            0.5013978986347466,
            0.38681277964578054,
            0.5936795762842003,
            0.595352982877607,
            0.6398109626113442,
            0.5664205978994309,
            0.5642905982905982,
        ),
        strict=True,
    )
)

BACKENDS = [
    "pycocotools",
    pytest.param(
        "faster_coco_eval",
        marks=pytest.mark.skipif(
            resolve_backend("auto") != "faster_coco_eval", reason="faster-coco-eval not installed"
        ),
    ),
]


@pytest.fixture(scope="module")
def coco100_paths():
    if not GT_FILE.is_file() or not RESULTS_FILE.is_file():
        pytest.skip(f"COCO-100 reference data not found under {COCO100}")
    return GT_FILE, RESULTS_FILE


@pytest.mark.parametrize("backend", BACKENDS)
def test_coco100_matches_published_numbers(coco100_paths, backend, capsys):
    gt_path, results_path = coco100_paths
    result = coco_evaluate(gt_path, results_path, backend=backend)
    assert list(result["coco"]) == list(COCO_METRIC_KEYS)
    for key, expected in PUBLISHED.items():
        assert result["coco"][key] == pytest.approx(expected, abs=1e-6), key
    assert capsys.readouterr().out == ""  # the backend's chatter is swallowed unless verbose

    # COCO AP is the mean over classes with ground truth of the per-class AP@[.5:.95].
    per_class = result["coco_per_class"]
    assert len(per_class) == 80 and per_class["person"] is not None
    defined = [ap for ap in per_class.values() if ap is not None]
    assert np.mean(defined) == pytest.approx(PUBLISHED["AP"], abs=1e-9)
    # classes absent from these 100 images' annotations are None, not 0
    gt = json.loads(gt_path.read_text())
    present = {a["category_id"] for a in gt["annotations"]}
    absent = {c["name"] for c in gt["categories"] if c["id"] not in present}
    assert absent and {name for name, ap in per_class.items() if ap is None} == absent


def test_coco100_from_loaded_dict_and_list_equals_paths(coco100_paths):
    gt_path, results_path = coco100_paths
    gt, results = json.loads(gt_path.read_text()), json.loads(results_path.read_text())
    snapshot = json.dumps(results)
    from_objects = coco_evaluate(gt, results)
    assert from_objects["coco"]["AP"] == pytest.approx(PUBLISHED["AP"], abs=1e-6)
    assert json.dumps(results) == snapshot  # pycocotools' loadRes never sees the caller's dicts


def test_verbose_prints_the_summary(make_gt, make_dets, capsys):
    gt = make_gt([(1, 1, [0, 0, 50, 50])])
    coco_evaluate(gt, make_dets([(1, 1, [0, 0, 50, 50], 0.9)]), verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def _gt_in_every_area_range(make_gt):
    # areas 10x10=100 (small), 50x50=2500 (medium), 120x120=14400 (large)
    return make_gt(
        [(1, 1, [0, 0, 10, 10]), (1, 1, [100, 100, 150, 150]), (2, 1, [0, 0, 120, 120])],
        image_ids=[1, 2, 3],
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_detections_give_zeros_not_a_crash(make_gt, backend):
    result = coco_evaluate(_gt_in_every_area_range(make_gt), [], backend=backend)
    assert result["coco"] == {key: 0.0 for key in COCO_METRIC_KEYS}
    assert result["coco_per_class"] == {"cat": 0.0}


def test_area_range_without_ground_truth_is_minus_one(make_gt, make_dets):
    # Only a medium object: APs/APl/ARs/ARl are undefined, pycocotools' -1 is kept.
    gt = make_gt([(1, 1, [0, 0, 50, 50])])
    result = coco_evaluate(gt, make_dets([(1, 1, [0, 0, 50, 50], 0.9)]))["coco"]
    assert result["AP"] == pytest.approx(1.0) and result["APm"] == pytest.approx(1.0)
    for key in ("APs", "APl", "ARs", "ARl"):
        assert result[key] == -1.0


def test_detection_on_image_without_ground_truth_is_a_false_positive(make_gt, make_dets):
    # Image 3 has no objects. Its 0.9 detection ranks first (FP), then the perfect 0.8 one:
    # precision 0 then 1/2 at recall 1. COCO's envelope is 1/2 at every recall point and at
    # every IoU threshold -> AP = AP50 = 0.5; VOC07 = VOC12 = 0.5 the same way.
    gt = make_gt([(1, 1, [0, 0, 40, 40])], image_ids=[1, 3])
    dets = make_dets([(3, 1, [0, 0, 40, 40], 0.9), (1, 1, [0, 0, 40, 40], 0.8)])
    result = evaluate(gt, dets)
    assert result["coco"]["AP"] == pytest.approx(0.5)
    assert result["coco"]["AP50"] == pytest.approx(0.5)
    assert result["voc07"]["mAP"] == pytest.approx(0.5)
    assert result["voc12"]["mAP"] == pytest.approx(0.5)


def test_annotation_id_zero_and_missing_fields_are_handled(make_gt, make_dets):
    # pycocotools treats a matched ground-truth id of 0 as "unmatched"; converters that number
    # annotations from 0 would silently lose a TP. Ids are renumbered, iscrowd/area filled in.
    gt = make_gt([(1, 1, [0, 0, 40, 40]), (1, 1, [50, 50, 90, 90])])
    for index, ann in enumerate(gt["annotations"]):
        ann["id"] = index  # 0 and 1
        del ann["iscrowd"], ann["area"]
    dets = make_dets([(1, 1, [0, 0, 40, 40], 0.9), (1, 1, [50, 50, 90, 90], 0.8)])
    assert coco_evaluate(gt, dets)["coco"]["AP"] == pytest.approx(1.0)
    assert "iscrowd" not in gt["annotations"][0]  # the caller's dict is untouched


def test_difficult_objects_are_ignored_by_coco_too(make_gt, make_dets):
    gt = make_gt([(1, 1, [0, 0, 40, 40]), (1, 1, [100, 100, 140, 140], {"difficult": 1})])
    dets = make_dets([(1, 1, [100, 100, 140, 140], 0.95), (1, 1, [0, 0, 40, 40], 0.9)])
    assert coco_evaluate(gt, dets)["coco"]["AP"] == pytest.approx(1.0)


def test_backend_selection_errors():
    with pytest.raises(ValueError, match="unknown COCO backend"):
        resolve_backend("detectron")
    assert resolve_backend("auto") in ("pycocotools", "faster_coco_eval")
    if resolve_backend("auto") == "pycocotools":
        with pytest.raises(ImportError, match="faster-coco-eval"):
            resolve_backend("faster_coco_eval")
