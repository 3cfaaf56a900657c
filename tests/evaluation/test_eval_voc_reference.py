"""VOC07 and VOC12 per-class AP on real COCO annotations against the reference rule.

The reference is py-faster-rcnn's ``voc_eval`` (carried unchanged by detectron2). It is
re-implemented below as plainly as possible, in its own coordinate convention: boxes as
1-based inclusive pixel indices with "+1" widths, which is how detectron2 feeds it continuous
boxes (x1 + 1, y1 + 1, x2, y2). detkit computes continuous IoU instead; the test checks that the
two conventions give the same numbers on the COCO val2014 demo pair (100 images, 80 classes, 9
crowd boxes, ties in score), where the earlier thresholds of detkit's 11-point AP differed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from detkit.evaluation import voc_evaluate
from tests.evaluation.conftest import COCO100_DIR

GT_FILE = COCO100_DIR / "instances_val2014_100.json"
RESULTS_FILE = COCO100_DIR / "fakebbox100_results.json"


@pytest.fixture(scope="module")
def coco100():
    if not GT_FILE.is_file() or not RESULTS_FILE.is_file():
        pytest.skip(f"COCO-100 reference data not found under {COCO100_DIR}")
    return json.loads(GT_FILE.read_text()), json.loads(RESULTS_FILE.read_text())


def _inclusive(bbox):
    """COCO [x, y, w, h] (continuous) -> the reference's 1-based inclusive [x1, y1, x2, y2]."""
    x, y, w, h = bbox
    return np.array([x + 1.0, y + 1.0, x + w, y + h])


def _reference_class_ap(gt, results, category_id, *, reverse_ties=False):
    """(VOC07 AP, VOC12 AP) of one class by the reference rule, or (None, None) without
    positives. Crowd boxes play the role of "difficult" ones."""
    objects = {}  # image id -> list of [box, ignored, taken]
    positives = 0
    for ann in gt["annotations"]:
        if ann["category_id"] == category_id:
            objects.setdefault(ann["image_id"], []).append(
                [_inclusive(ann["bbox"]), bool(ann["iscrowd"]), False]
            )
            positives += not ann["iscrowd"]
    if positives == 0:
        return None, None

    dets = [(i, r) for i, r in enumerate(results) if r["category_id"] == category_id]
    # Descending score; equal scores in input order, or reversed to show the order is immaterial.
    dets.sort(key=lambda item: (-item[1]["score"], -item[0] if reverse_ties else item[0]))
    tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
    for rank, (_, det) in enumerate(dets):
        box = _inclusive(det["bbox"])
        best_iou, best = -np.inf, None
        for candidate in objects.get(det["image_id"], []):
            gt_box = candidate[0]
            width = max(min(box[2], gt_box[2]) - max(box[0], gt_box[0]) + 1.0, 0.0)
            height = max(min(box[3], gt_box[3]) - max(box[1], gt_box[1]) + 1.0, 0.0)
            inter = width * height
            union = (
                (box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
                + (gt_box[2] - gt_box[0] + 1.0) * (gt_box[3] - gt_box[1] + 1.0)
                - inter
            )
            if inter / union > best_iou:  # strictly greater: the first box wins a tie
                best_iou, best = inter / union, candidate
        if best is not None and best_iou > 0.5:
            if best[1]:
                continue  # a crowd/difficult box: neither TP nor FP
            if best[2]:
                fp[rank] = 1.0  # its best box is already taken: a duplicate
            else:
                tp[rank], best[2] = 1.0, True
        else:
            fp[rank] = 1.0

    tp, fp = np.cumsum(tp), np.cumsum(fp)
    recall = tp / float(positives)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)

    ap07 = 0.0
    for threshold in np.arange(0.0, 1.1, 0.1):
        ap07 += (np.max(precision[recall >= threshold]) if np.any(recall >= threshold) else 0.0) / 11.0

    points_recall = [0.0, *recall.tolist(), 1.0]
    envelope = [0.0, *precision.tolist(), 0.0]
    for i in range(len(envelope) - 2, -1, -1):
        envelope[i] = max(envelope[i], envelope[i + 1])
    ap12 = 0.0
    for i in range(len(points_recall) - 1):
        if points_recall[i + 1] != points_recall[i]:
            ap12 += (points_recall[i + 1] - points_recall[i]) * envelope[i + 1]
    return ap07, ap12


def test_coco100_per_class_ap_equals_the_reference_rule(coco100):
    gt, results = coco100
    ours = voc_evaluate(GT_FILE, RESULTS_FILE)
    names = {c["id"]: c["name"] for c in gt["categories"]}
    compared = 0
    for category_id, name in names.items():
        ap07, ap12 = _reference_class_ap(gt, results, category_id)
        assert _reference_class_ap(gt, results, category_id, reverse_ties=True) == (ap07, ap12), name
        if ap07 is None:
            assert ours["voc07"]["per_class"][name] is None and ours["voc12"]["per_class"][name] is None
            continue
        assert ours["voc07"]["per_class"][name] == pytest.approx(ap07, abs=1e-6), name
        assert ours["voc12"]["per_class"][name] == pytest.approx(ap12, abs=1e-6), name
        compared += 1
    assert compared >= 60  # most of the 80 classes occur in these 100 images

    # The classes where thresholds computed as k / 10 gave 1/11 more than the devkit's.
    assert ours["voc07"]["per_class"]["tie"] == pytest.approx(0.545, abs=5e-4)
    assert ours["voc07"]["per_class"]["wine glass"] == pytest.approx(0.495, abs=5e-4)
    defined = [ap for ap in ours["voc07"]["per_class"].values() if ap is not None]
    assert ours["voc07"]["mAP"] == pytest.approx(np.mean(defined), abs=1e-12)
