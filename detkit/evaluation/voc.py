"""PASCAL VOC protocol: per-class AP at one IoU threshold, VOC2007 11-point and VOC2010+ area.

The reference is py-faster-rcnn's ``voc_eval`` (which detectron2 carries unchanged and which
produced most published VOC07 numbers). Its rule, reproduced here exactly (``rule="voc"``,
the default), per class:

* detections are taken in descending score order;
* each looks at the ground-truth box of its image with the highest IoU among *all* boxes of its
  class, already matched or not (first in file order on equal IoU);
* IoU strictly greater than ``iou_threshold`` (``>``, as ``voc_eval``; the MATLAB devkit and
  MMDetection use ``>=``, a difference only at an IoU of exactly 0.5): on a normal box not yet
  matched, a true positive and the box is matched; on a box already matched, a false positive
  (a duplicate), even when another unmatched box also overlaps enough; on a ``difficult`` box
  (COCO ``iscrowd`` is treated the same way, as MMDetection does with its ignored boxes):
  neither true nor false positive, and the box stays available;
* below the threshold (or no box in the image): a false positive;
* recall = TP / (number of non-difficult ground-truth boxes), precision = TP / (TP + FP).

``rule="coco"`` is COCOeval's matching instead: the unmatched box of highest IoU ``>=`` the
threshold, so a duplicate can still take a neighbouring object. The confusion matrix uses it.

AP: VOC2007 averages, over the 11 recall thresholds ``np.arange(0., 1.1, 0.1)``, the highest
precision at recall >= threshold (0 if never reached). Those thresholds are the reference's
floating-point values, ``i * 0.1``: 0.3, 0.6 and 0.7 come out one ulp *above* 0.3, 0.6 and 0.7
(0.30000000000000004, ...), so a class whose recall is exactly 3/10 (say 6 of 20 objects found)
does not reach the "0.3" point. Computing the thresholds as ``k / 10`` instead -- the earlier
behaviour of this module -- lets such a recall reach it, and on the COCO val2014 100-image demo
pair that changed the VOC07 AP of 5 classes, by up to 1/11 (tie 0.636 instead of 0.545, wine
glass 0.566 instead of 0.495; sports ball, fork and knife by less). VOC07 numbers exist to be
compared with published ones, so the reference's thresholds are used.
VOC2010+ is the area under the monotone precision envelope (precision made non-increasing from
the right, integrated over recall), also as the reference computes it.

Boxes: COCO-format inputs are continuous ``xywh`` and become continuous ``xyxy``; IoU uses
area = (x2 - x1) * (y2 - y1), no "+1". The reference adds 1 to every width because its boxes
are 1-based inclusive pixel indices; detectron2 feeds it continuous boxes by adding 1 to x1 and
y1 first, and then its "+1" widths are exactly the continuous ones. So continuous IoU *is* the
reference's IoU for continuous boxes (detkit's VOC reader does the inverse shift on loading);
adding 1 to continuous widths would inflate small boxes.

Ties in score keep their input order (a stable sort, as COCOeval's mergesort). The reference
uses numpy's default ``argsort``, which is not stable and whose order of equal scores depends
on the numpy build, so no order can match it everywhere; on the COCO demo pair the tie order
does not change any class's AP under ``rule="voc"``.

A class with no non-difficult ground truth has no recall, so its AP is ``None`` in
``per_class`` and it is left out of the mean; mAP is -1.0 when no class has ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth

TRUE_POSITIVE, FALSE_POSITIVE, IGNORED = 1, 0, -1
MatchRule = Literal["voc", "coco"]

# The reference's recall thresholds, np.arange(0., 1.1, 0.1): numpy fills them as i * 0.1, which
# puts 0.3, 0.6 and 0.7 one ulp above their decimal values (see the module docstring).
ELEVEN_POINT_THRESHOLDS = np.arange(11) * 0.1


def _iou_one_to_many(boxes: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """IoU of ``boxes: float64[M, 4] xyxy`` with ``candidates: float64[M, G, 4] xyxy`` -> ``[M, G]``."""
    top_left = np.maximum(boxes[:, None, :2], candidates[..., :2])
    bottom_right = np.minimum(boxes[:, None, 2:], candidates[..., 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)[:, None]
    cand_area = (candidates[..., 2:] - candidates[..., :2]).prod(-1)
    union = area + cand_area - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _group_slots(groups: np.ndarray, num_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Position of each element within its group, keeping input order; and the group sizes."""
    counts = np.bincount(groups, minlength=num_groups)
    by_group = np.argsort(groups, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots = np.empty(len(groups), dtype=np.int64)
    slots[by_group] = np.arange(len(groups)) - starts[groups[by_group]]
    return slots, counts


@dataclass(frozen=True)
class MatchResult:
    """Per detection, in input order: ``outcome: int8[K]`` (1 TP, 0 FP, -1 ignored) and
    ``gt_index: int64[K]`` (the ground-truth row it matched, or the difficult row that made it
    ignored; -1 for a false positive)."""

    outcome: np.ndarray
    gt_index: np.ndarray


def match_detections(
    *,
    gt_image_ids: np.ndarray,
    gt_boxes: np.ndarray,
    gt_ignore: np.ndarray,
    det_image_ids: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    iou_threshold: float = 0.5,
    rule: MatchRule = "voc",
) -> MatchResult:
    """Greedy matching of one class's detections (``det_boxes: float64[K, 4] xyxy``) to its
    ground truth (``gt_boxes: float64[N, 4] xyxy``, ``gt_ignore: bool[N]`` difficult/crowd), by
    ``rule`` (``voc``: the reference's, ``coco``: COCOeval's; see the module docstring).

    Images are independent, so the sequential greedy loop runs over a detection's rank within
    its image and is vectorised across images: at most (detections per image) numpy steps.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    if rule not in ("voc", "coco"):
        raise ValueError(f"unknown matching rule {rule!r}; choose 'voc' or 'coco'")
    num_dets = len(det_scores)
    outcome = np.full(num_dets, FALSE_POSITIVE, dtype=np.int8)
    gt_index = np.full(num_dets, -1, dtype=np.int64)
    images, det_group = np.unique(det_image_ids, return_inverse=True)
    has_gt = np.isin(gt_image_ids, images)
    if num_dets == 0 or not has_gt.any():
        return MatchResult(outcome, gt_index)

    # Ground truth padded per image: [U images, G slots]; slots keep file order for tie-breaking.
    gt_rows = np.flatnonzero(has_gt)
    gt_group = np.searchsorted(images, gt_image_ids[gt_rows])
    gt_slot, gt_counts = _group_slots(gt_group, len(images))
    num_slots = int(gt_counts.max())
    padded_boxes = np.zeros((len(images), num_slots, 4))
    padded_rows = np.full((len(images), num_slots), -1, dtype=np.int64)
    padded_boxes[gt_group, gt_slot] = gt_boxes[gt_rows]
    padded_rows[gt_group, gt_slot] = gt_rows
    valid = padded_rows >= 0
    ignore = np.zeros_like(valid)
    ignore[gt_group, gt_slot] = gt_ignore[gt_rows]
    taken = np.zeros_like(valid)

    order = np.argsort(-np.asarray(det_scores, dtype=np.float64), kind="stable")
    rank, _ = _group_slots(det_group[order], len(images))
    by_rank = order[np.argsort(rank, kind="stable")]
    rank_starts = np.concatenate([[0], np.cumsum(np.bincount(rank))])
    for start, stop in zip(rank_starts[:-1], rank_starts[1:], strict=True):
        dets = by_rank[start:stop]  # one detection per image, so updates to `taken` never collide
        group = det_group[dets]
        ious = _iou_one_to_many(det_boxes[dets], padded_boxes[group])
        available = valid[group] if rule == "voc" else valid[group] & (~taken[group] | ignore[group])
        ious = np.where(available, ious, -1.0)
        best = ious.argmax(axis=1)
        best_iou = ious[np.arange(len(dets)), best]
        hit = best_iou > iou_threshold if rule == "voc" else best_iou >= iou_threshold
        ignored = hit & ignore[group, best]
        positive = hit & ~ignored & ~taken[group, best]
        taken[group[positive], best[positive]] = True
        outcome[dets[ignored]] = IGNORED
        outcome[dets[positive]] = TRUE_POSITIVE
        gt_index[dets[positive | ignored]] = padded_rows[group, best][positive | ignored]
    return MatchResult(outcome, gt_index)


@dataclass(frozen=True)
class PRCurve:
    """One class's precision/recall over its scored detections (ignored ones dropped), in
    descending score order: ``recall, precision, scores: float64[D]``; ``num_positives`` is the
    number of non-difficult ground-truth boxes."""

    recall: np.ndarray
    precision: np.ndarray
    scores: np.ndarray
    num_positives: int


def precision_recall(outcome: np.ndarray, scores: np.ndarray, num_positives: int) -> PRCurve:
    """Cumulate ``outcome: int8[K]`` (1 TP, 0 FP, -1 ignored) in descending ``scores`` order."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    ranked = outcome[order]
    kept = ranked != IGNORED
    true_positives = np.cumsum(ranked[kept] == TRUE_POSITIVE)
    recall = true_positives / num_positives if num_positives else np.zeros(len(true_positives))
    precision = true_positives / np.arange(1, len(true_positives) + 1)
    return PRCurve(
        recall.astype(np.float64),
        precision.astype(np.float64),
        np.asarray(scores)[order][kept],
        num_positives,
    )


def average_precision_11point(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2007: mean over the 11 thresholds t of ``ELEVEN_POINT_THRESHOLDS`` of
    max(precision[recall >= t]) (0 if none). ``recall`` must be non-decreasing (it is, along a
    ranked list)."""
    if len(recall) == 0:
        return 0.0
    envelope = np.maximum.accumulate(np.asarray(precision)[::-1])[::-1]
    first = np.searchsorted(recall, ELEVEN_POINT_THRESHOLDS, side="left")
    reached = first < len(recall)
    return float(envelope[first[reached]].sum() / 11)


def average_precision_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC2010+: area under the precision envelope, from recall 0 to the last recall reached."""
    recall_points = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    steps = np.flatnonzero(recall_points[1:] != recall_points[:-1])
    return float(((recall_points[steps + 1] - recall_points[steps]) * envelope[steps + 1]).sum())


def precision_recall_curves(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    *,
    iou_threshold: float = 0.5,
    rule: MatchRule = "voc",
) -> dict[str, PRCurve | None]:
    """Per class name (ground-truth category order), its PR curve; None without ground truth."""
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    curves: dict[str, PRCurve | None] = {}
    for category_id, name in zip(ground_truth.category_ids, ground_truth.category_names, strict=True):
        gt_rows = ground_truth.ann_category_ids == category_id
        num_positives = int((gt_rows & ~ground_truth.ignore).sum())
        if num_positives == 0:
            curves[name] = None
            continue
        det_rows = detections.category_ids == category_id
        match = match_detections(
            gt_image_ids=ground_truth.ann_image_ids[gt_rows],
            gt_boxes=ground_truth.boxes[gt_rows],
            gt_ignore=ground_truth.ignore[gt_rows],
            det_image_ids=detections.image_ids[det_rows],
            det_boxes=detections.boxes[det_rows],
            det_scores=detections.scores[det_rows],
            iou_threshold=iou_threshold,
            rule=rule,
        )
        curves[name] = precision_recall(match.outcome, detections.scores[det_rows], num_positives)
    return curves


def _summary(per_class: dict[str, float | None]) -> dict:
    defined = [ap for ap in per_class.values() if ap is not None]
    return {"mAP": float(np.mean(defined)) if defined else -1.0, "per_class": per_class}


def voc_evaluate(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    *,
    iou_threshold: float = 0.5,
    rule: MatchRule = "voc",
) -> dict:
    """VOC AP at ``iou_threshold`` on COCO-format inputs (``bbox`` ``[x, y, w, h]``).

    Returns ``{"voc07": {"mAP": float, "per_class": {name: float | None}},
    "voc12": {...same...}}``: 11-point and area AP; None marks a class without ground truth.
    """
    curves = precision_recall_curves(ground_truth, detections, iou_threshold=iou_threshold, rule=rule)
    voc07 = {
        n: None if c is None else average_precision_11point(c.recall, c.precision) for n, c in curves.items()
    }
    voc12 = {
        n: None if c is None else average_precision_area(c.recall, c.precision) for n, c in curves.items()
    }
    return {"voc07": _summary(voc07), "voc12": _summary(voc12)}
