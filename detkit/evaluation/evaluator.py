"""One call for every protocol: the COCO 12 numbers, VOC07 and VOC12 mAP, per-class AP."""

from __future__ import annotations

import time
from pathlib import Path

from detkit.evaluation.coco import Backend, coco_evaluate, resolve_backend
from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth
from detkit.evaluation.voc import MatchRule, voc_evaluate


def evaluate(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    *,
    iou_threshold_voc: float = 0.5,
    backend: Backend = "auto",
    voc_rule: MatchRule = "voc",
    verbose: bool = False,
) -> dict:
    """Evaluate COCO-format detections against COCO-format ground truth.

    Args:
        ground_truth: COCO instances dict or JSON path. Annotation ``bbox`` is ``[x, y, w, h]``
            in pixels; optional ``iscrowd`` and ``difficult`` (VOC) mark objects that count
            neither as hits nor misses.
        detections: COCO results list or JSON path: ``{"image_id", "category_id",
            "bbox": [x, y, w, h], "score"}`` with ids from the ground truth.
        iou_threshold_voc: IoU a VOC true positive must exceed (``>``, as the reference).
        backend: COCO engine, ``auto`` (faster-coco-eval when installed, else pycocotools),
            ``pycocotools`` (the reference) or ``faster_coco_eval``.
        voc_rule: VOC greedy matching, ``voc`` (the reference's, default) or ``coco``; see
            ``detkit.evaluation.voc``.
        verbose: let the COCO backend print its progress and summary.

    Returns:
        ``{"coco": {AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl},
        "coco_per_class": {name: AP@[.5:.95] | None}, "coco_per_class_ap50": {name: AP50 | None},
        "voc07": {"mAP": float, "per_class": {name: AP | None}}, "voc12": {...},
        "counts": {"images", "annotations", "detections"},
        "params": {"voc_iou_threshold", "voc_rule", "coco_backend"}, "eval_seconds": float}``.
        Fractions in [0, 1]; -1.0 marks a summary number with no ground truth to score
        against (pycocotools' convention), None a class without ground truth. Per-class dicts
        follow the ground truth's category-id order and use its category names.

    Raises:
        FileNotFoundError / ValueError naming the file (or "ground truth (dict)" /
        "detections (list)") for unreadable or malformed inputs and unknown image or category ids.
    """
    start = time.perf_counter()
    backend = resolve_backend(backend)
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    coco = coco_evaluate(ground_truth, detections, backend=backend, verbose=verbose)
    voc = voc_evaluate(ground_truth, detections, iou_threshold=iou_threshold_voc, rule=voc_rule)
    return {
        "coco": coco["coco"],
        "voc07": voc["voc07"],
        "voc12": voc["voc12"],
        "coco_per_class": coco["coco_per_class"],
        "coco_per_class_ap50": coco["coco_per_class_ap50"],
        "counts": {
            "images": int(len(ground_truth.image_ids)),
            "annotations": int(len(ground_truth.boxes)),
            "detections": len(detections),
        },
        "params": {
            "voc_iou_threshold": float(iou_threshold_voc),
            "voc_rule": voc_rule,
            "coco_backend": backend,
        },
        "eval_seconds": time.perf_counter() - start,
    }
