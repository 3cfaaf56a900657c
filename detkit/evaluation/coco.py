"""COCO bbox protocol, computed by pycocotools' ``COCOeval`` (the reference) or faster-coco-eval.

faster-coco-eval (``pip install "detkit[fast-eval]"``) is the default when it is installed
(``backend="auto"``): its C++ evaluation gives pycocotools' numbers (checked to 1e-6 in the
tests) several times faster (docs/BENCHMARKS.md). ``backend="pycocotools"`` forces the reference.

The 12 standard numbers are returned as fractions under the keys of ``COCO_METRIC_KEYS``.
A number pycocotools cannot define (no ground truth in that area range, or none at all) keeps
pycocotools' value ``-1.0``: it stays a plain float that loggers and comparisons accept, and it
cannot be confused with a real score (formatters print it as "n/a"). Per-class AP (AP@[.5:.95],
all areas, 100 detections) is ``None`` for a class without ground truth.

Zero detections are evaluated, not special-cased: the results object is built empty, so
pycocotools itself reports 0 where ground truth exists and -1 where none does.

VOC ``difficult`` objects reach COCOeval marked ``iscrowd`` (see ``inputs.GroundTruth``): a
detection on them counts neither as a true nor a false positive, as in the VOC protocol.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path
from typing import Literal

import numpy as np

from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth

COCO_METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")

Backend = Literal["pycocotools", "faster_coco_eval", "auto"]


def faster_coco_eval_available() -> bool:
    return importlib.util.find_spec("faster_coco_eval") is not None


def resolve_backend(backend: str) -> str:
    """``auto`` picks faster-coco-eval when it is installed, pycocotools otherwise."""
    if backend == "auto":
        return "faster_coco_eval" if faster_coco_eval_available() else "pycocotools"
    if backend == "faster_coco_eval" and not faster_coco_eval_available():
        raise ImportError(
            "backend='faster_coco_eval' needs the faster-coco-eval package (pip install faster-coco-eval)"
        )
    if backend not in ("pycocotools", "faster_coco_eval"):
        raise ValueError(
            f"unknown COCO backend {backend!r}; choose 'pycocotools', 'faster_coco_eval' or 'auto'"
        )
    return backend


def _empty_results(coco_class: type, gt_dataset: dict):
    """A results object with no detections (pycocotools' loadRes fails on an empty list)."""
    results = coco_class()
    results.dataset = {
        "images": list(gt_dataset["images"]),
        "categories": list(gt_dataset["categories"]),
        "annotations": [],
    }
    results.createIndex()
    return results


def _run_cocoeval(ground_truth: GroundTruth, detections: DetectionSet, backend: str, verbose: bool):
    results = detections.to_coco_results()
    if backend == "faster_coco_eval":
        from faster_coco_eval import COCO, COCOeval_faster

        say = print if verbose else (lambda *args, **kwargs: None)
        gt_api = COCO(ground_truth.dataset, print_function=say)
        dt_api = gt_api.loadRes(results) if results else _empty_results(COCO, ground_truth.dataset)
        evaluator = COCOeval_faster(gt_api, dt_api, "bbox", print_function=say)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
        return evaluator

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_api = COCO()
    gt_api.dataset = ground_truth.dataset
    gt_api.createIndex()
    dt_api = gt_api.loadRes(results) if results else _empty_results(COCO, ground_truth.dataset)
    evaluator = COCOeval(gt_api, dt_api, "bbox")
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return evaluator


def coco_evaluate(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    *,
    backend: Backend = "auto",
    verbose: bool = False,
) -> dict:
    """COCO bbox evaluation.

    Args:
        ground_truth: COCO instances dict or path (``bbox`` ``[x, y, w, h]``).
        detections: COCO results list or path (``image_id, category_id, bbox [x, y, w, h], score``).
        backend: ``auto`` (default: faster-coco-eval when installed, else pycocotools),
            ``pycocotools`` (the reference) or ``faster_coco_eval`` (same numbers, faster).
        verbose: let the backend print its progress and summary table.

    Returns:
        ``{"coco": {key: float for key in COCO_METRIC_KEYS}, "coco_per_class": {name: AP@[.5:.95]},
        "coco_per_class_ap50": {name: AP at IoU 0.5}}`` with fractions in [0, 1], -1.0 where
        pycocotools has no ground truth to score against, None for a class without ground truth.
    """
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    backend = resolve_backend(backend)
    if verbose:
        evaluator = _run_cocoeval(ground_truth, detections, backend, verbose)
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = _run_cocoeval(ground_truth, detections, backend, verbose)

    stats = np.asarray(evaluator.stats, dtype=np.float64)[: len(COCO_METRIC_KEYS)]
    summary = {key: float(value) for key, value in zip(COCO_METRIC_KEYS, stats, strict=True)}
    return {
        "coco": summary,
        "coco_per_class": _per_class_ap(evaluator, ground_truth),
        "coco_per_class_ap50": _per_class_ap(evaluator, ground_truth, iou=0.5),
    }


def _per_class_ap(evaluator, ground_truth: GroundTruth, iou: float | None = None) -> dict[str, float | None]:
    """AP per category from ``eval["precision"]`` [T iou, R recall, K class, A area, M maxDets],
    over all IoU thresholds (AP@[.5:.95]) or at the one equal to ``iou``; all areas, 100 dets."""
    precision = np.asarray(evaluator.eval["precision"])
    if iou is not None:
        thresholds = np.asarray(evaluator.params.iouThrs)
        precision = precision[np.flatnonzero(np.isclose(thresholds, iou))[:1]]
    area_all = list(evaluator.params.areaRngLbl).index("all")
    eval_category_ids = list(evaluator.params.catIds)
    per_class: dict[str, float | None] = {}
    for category_id, name in zip(ground_truth.category_ids, ground_truth.category_names, strict=True):
        values = precision[:, :, eval_category_ids.index(category_id), area_all, -1]
        defined = values[values > -1]
        per_class[name] = float(defined.mean()) if defined.size else None
    return per_class
