"""faster-coco-eval against pycocotools: the same 12 numbers and per-class AP; the default choice."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from detkit.analysis.speed.evaluators import main as benchmark_main
from detkit.evaluation import COCO_METRIC_KEYS, coco_evaluate, evaluate
from detkit.evaluation.coco import faster_coco_eval_available
from detkit.evaluation.synthetic import synthetic_coco
from tests.evaluation.conftest import COCO100_DIR

needs_faster_coco_eval = pytest.mark.skipif(
    not faster_coco_eval_available(), reason="faster-coco-eval not installed (pip install faster-coco-eval)"
)


def _assert_same_numbers(ground_truth, results):
    reference = coco_evaluate(ground_truth, results, backend="pycocotools")
    fast = coco_evaluate(ground_truth, results, backend="faster_coco_eval")
    assert list(fast["coco"]) == list(COCO_METRIC_KEYS)
    for key in COCO_METRIC_KEYS:
        assert fast["coco"][key] == pytest.approx(reference["coco"][key], abs=1e-6), key
    assert fast["coco_per_class"].keys() == reference["coco_per_class"].keys()
    for name, ap in reference["coco_per_class"].items():
        if ap is None:
            assert fast["coco_per_class"][name] is None, name
        else:
            assert fast["coco_per_class"][name] == pytest.approx(ap, abs=1e-6), name
    return reference


@needs_faster_coco_eval
def test_backends_agree_on_coco100():
    gt_file = COCO100_DIR / "instances_val2014_100.json"
    results_file = COCO100_DIR / "fakebbox100_results.json"
    if not gt_file.is_file():
        pytest.skip(f"COCO-100 reference data not found under {COCO100_DIR}")
    _assert_same_numbers(gt_file, results_file)


@needs_faster_coco_eval
def test_backends_agree_on_synthetic_data_with_crowds_and_every_area():
    gt, results = synthetic_coco(300, 40, num_classes=8, crowd_fraction=0.05, seed=3)
    reference = _assert_same_numbers(gt, results)
    # the case is not degenerate: every area range is defined and scores are mid-range
    assert all(0.05 < reference["coco"][key] < 0.95 for key in COCO_METRIC_KEYS), reference["coco"]


def test_auto_backend_is_faster_coco_eval_when_installed(make_gt, make_dets):
    gt = make_gt([(1, 1, [0, 0, 50, 50])])
    metrics = evaluate(gt, make_dets([(1, 1, [0, 0, 50, 50], 0.9)]))
    expected = "faster_coco_eval" if faster_coco_eval_available() else "pycocotools"
    assert metrics["params"]["coco_backend"] == expected
    assert metrics["coco"]["AP"] == pytest.approx(1.0)


def test_synthetic_data_shape_and_determinism():
    gt, results = synthetic_coco(50, 30, num_classes=5, seed=7)
    assert Counter(r["image_id"] for r in results) == {i: 30 for i in range(1, 51)}
    areas = np.array([a["area"] for a in gt["annotations"]])
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas <= 96**2)).any() and (areas > 96**2).any()
    assert {a["category_id"] for a in gt["annotations"]} <= {1, 2, 3, 4, 5}
    assert all(0 < r["score"] <= 1 and r["bbox"][2] > 0 and r["bbox"][3] > 0 for r in results)
    assert synthetic_coco(50, 30, num_classes=5, seed=7) == (gt, results)
    assert synthetic_coco(50, 30, num_classes=5, seed=8)[1] != results


def test_benchmark_command_runs_on_a_small_case(capsys):
    assert benchmark_main(["images=20", "detections=10"]) == 0
    out = capsys.readouterr().out
    assert "20 images, 200 detections" in out and "pycocotools" in out
    assert benchmark_main(["images=many"]) == 2
