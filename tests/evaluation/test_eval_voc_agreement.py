"""VOC protocol against references: a plain loop implementation and pycocotools' matching."""

from __future__ import annotations

import contextlib
import io
import time

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detkit.evaluation import coco_evaluate, match_detections, precision_recall_curves, voc_evaluate


def _synthetic_case(seed: int, num_images: int = 40, num_classes: int = 3):
    """Random GT (some difficult, some overlapping pairs) and detections: jittered copies of
    GT whose score falls with the jitter, duplicates, wrong labels and clutter."""
    rng = np.random.default_rng(seed)
    names = [f"class{c}" for c in range(num_classes)]
    annotations, results = [], []
    for image_id in range(1, num_images + 1):
        boxes = []
        for _ in range(rng.integers(0, 6)):
            if boxes and rng.random() < 0.4:  # a neighbour overlapping the previous object
                x, y, w, h = boxes[-1] + rng.normal(0, 0.25, 4) * [boxes[-1][2], boxes[-1][3], 4, 4]
                w, h = max(w, 8.0), max(h, 8.0)
            else:
                (x, y), (w, h) = rng.uniform(0, 200, 2), rng.uniform(8, 80, 2)
            boxes.append(np.array([x, y, w, h]))
            category = int(rng.integers(1, num_classes + 1))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h),
                    "iscrowd": 0,
                    "difficult": int(rng.random() < 0.1),
                }
            )
            for _ in range(rng.integers(0, 3)):  # 0-2 detections per object, some duplicates
                noise = rng.normal(0, 0.12, 4)
                box = [
                    x + noise[0] * w,
                    y + noise[1] * h,
                    max(w * (1 + noise[2]), 1.0),
                    max(h * (1 + noise[3]), 1.0),
                ]
                label = category if rng.random() < 0.85 else int(rng.integers(1, num_classes + 1))
                score = float(np.clip(1.0 - np.abs(noise).sum() + rng.normal(0, 0.1), 0.001, 1.0))
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": label,
                        "bbox": [float(v) for v in box],
                        "score": score,
                    }
                )
        for _ in range(rng.integers(0, 4)):  # clutter
            (x, y), (w, h) = rng.uniform(0, 250, 2), rng.uniform(5, 60, 2)
            label = int(rng.integers(1, num_classes + 1))
            results.append(
                {
                    "image_id": image_id,
                    "category_id": label,
                    "bbox": [x, y, w, h],
                    "score": 0.6 * rng.random(),
                }
            )
    gt = {
        "images": [{"id": i, "width": 300, "height": 300} for i in range(1, num_images + 1)],
        "annotations": annotations,
        "categories": [{"id": c + 1, "name": n} for c, n in enumerate(names)],
    }
    return gt, results


def _reference_voc(gt, results, category_id, threshold=0.5, rule="voc"):
    """VOC AP written as plainly as possible: loops, lists, no numpy. ``voc``: the best box of
    all, IoU > threshold; ``coco``: the best unmatched box, IoU >= threshold."""
    objects = [a for a in gt["annotations"] if a["category_id"] == category_id]
    positives = sum(1 for a in objects if not a["difficult"])
    if positives == 0:
        return None, None
    taken = [False] * len(objects)
    dets = sorted((r for r in results if r["category_id"] == category_id), key=lambda r: -r["score"])
    tp_flags = []
    for det in dets:
        dx, dy, dw, dh = det["bbox"]
        best_iou, best = -1.0, None
        for index, obj in enumerate(objects):
            if obj["image_id"] != det["image_id"]:
                continue
            if rule == "coco" and taken[index] and not obj["difficult"]:
                continue
            gx, gy, gw, gh = obj["bbox"]
            iw = min(dx + dw, gx + gw) - max(dx, gx)
            ih = min(dy + dh, gy + gh) - max(dy, gy)
            inter = max(iw, 0) * max(ih, 0)
            iou = inter / (dw * dh + gw * gh - inter)
            if iou > best_iou:
                best_iou, best = iou, index
        hit = best_iou > threshold if rule == "voc" else best_iou >= threshold
        if best is not None and hit:
            if objects[best]["difficult"]:
                continue  # neither TP nor FP
            if taken[best]:
                tp_flags.append(False)
            else:
                taken[best] = True
                tp_flags.append(True)
        else:
            tp_flags.append(False)
    recall, precision, tp = [], [], 0
    for rank, flag in enumerate(tp_flags, start=1):
        tp += flag
        recall.append(tp / positives)
        precision.append(tp / rank)
    # 11-point, at the reference's thresholds np.arange(0., 1.1, 0.1), i.e. k * 0.1 in floats
    ap07 = 0.0
    for k in range(11):
        reached = [p for r, p in zip(recall, precision, strict=True) if r >= k * 0.1]
        ap07 += (max(reached) if reached else 0.0) / 11
    # area under the envelope
    mrec, mpre = [0.0, *recall, 1.0], [0.0, *precision, 0.0]
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    ap12 = sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])
    return ap07, ap12


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("rule", ["voc", "coco"])
def test_agrees_with_plain_loop_reference(seed, rule):
    gt, results = _synthetic_case(seed)
    ours = voc_evaluate(gt, results, rule=rule)
    for category in gt["categories"]:
        ap07, ap12 = _reference_voc(gt, results, category["id"], rule=rule)
        assert ours["voc07"]["per_class"][category["name"]] == pytest.approx(ap07, abs=1e-9)
        assert ours["voc12"]["per_class"][category["name"]] == pytest.approx(ap12, abs=1e-9)


def test_the_two_rules_differ_on_overlapping_objects():
    # Guards the agreement test above: on this case the rules really give different numbers.
    gt, results = _synthetic_case(0)
    coco_rule = voc_evaluate(gt, results, rule="coco")["voc12"]["mAP"]
    voc_rule = voc_evaluate(gt, results)["voc12"]["mAP"]
    assert voc_rule < coco_rule - 1e-3


def test_matching_agrees_with_pycocotools_at_iou_half():
    # Without crowds/difficult objects and with < 100 detections per image, our "coco" matching
    # at IoU 0.5 is COCO's. COCO integrates the same precision envelope at 101 recall points
    # (0, 0.01, ..., 1), so resampling our curve there must give pycocotools' per-class AP50
    # exactly, and our area AP (VOC12) differs from AP50 only by that sampling.
    gt, results = _synthetic_case(seed=5, num_images=60)
    for ann in gt["annotations"]:
        ann["difficult"] = 0
    curves = precision_recall_curves(gt, results, rule="coco")

    with contextlib.redirect_stdout(io.StringIO()):
        gt_api = COCO()
        gt_api.dataset = gt
        gt_api.createIndex()
        evaluator = COCOeval(gt_api, gt_api.loadRes([dict(r) for r in results]), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
    recall_points = evaluator.params.recThrs
    for k, category in enumerate(gt["categories"]):
        curve = curves[category["name"]]
        envelope = np.maximum.accumulate(curve.precision[::-1])[::-1]
        first = np.searchsorted(curve.recall, recall_points, side="left")
        resampled = np.where(first < len(envelope), envelope[np.minimum(first, len(envelope) - 1)], 0.0)
        coco_ap50 = evaluator.eval["precision"][0, :, k, 0, -1]
        np.testing.assert_allclose(resampled, coco_ap50, atol=1e-12)

    # Sampling 101 points of a step function on [0, 1] moves its mean by at most about one
    # step width (0.01) times the precision range, so the two APs agree to ~1e-2.
    voc12 = voc_evaluate(gt, results, rule="coco")["voc12"]["mAP"]
    coco_ap50 = coco_evaluate(gt, results)["coco"]["AP50"]
    assert voc12 == pytest.approx(coco_ap50, abs=0.01)
    assert voc12 != coco_ap50  # they are different integrals, merely close


def test_vectorised_matching_is_fast_for_many_images():
    # 2,000 images x 50 detections of one class against 3 objects each: well under a second.
    rng = np.random.default_rng(0)
    num_images, per_image = 2000, 50
    gt_image_ids = np.repeat(np.arange(num_images), 3)
    xy = rng.uniform(0, 400, (len(gt_image_ids), 2))
    gt_boxes = np.concatenate([xy, xy + rng.uniform(10, 80, xy.shape)], axis=1)
    det_image_ids = np.repeat(np.arange(num_images), per_image)
    dxy = rng.uniform(0, 400, (len(det_image_ids), 2))
    det_boxes = np.concatenate([dxy, dxy + rng.uniform(10, 80, dxy.shape)], axis=1)
    start = time.perf_counter()
    match = match_detections(
        gt_image_ids=gt_image_ids,
        gt_boxes=gt_boxes,
        gt_ignore=np.zeros(len(gt_image_ids), dtype=bool),
        det_image_ids=det_image_ids,
        det_boxes=det_boxes,
        det_scores=rng.random(len(det_image_ids)),
    )
    assert time.perf_counter() - start < 2.0
    # each object is matched at most once
    matched = match.gt_index[match.outcome == 1]
    assert len(np.unique(matched)) == len(matched)
