"""Why detections are wrong: the error breakdown of TIDE (Bolya et al., ECCV 2020).

Every false positive and every missed object gets exactly one cause, and each cause is weighed
by the AP an oracle that fixes only that cause would add (dAP). Detections are matched per
image in descending score order, COCO style: a detection takes the unmatched ground-truth box
of its class with the highest IoU, when that IoU is >= ``foreground_iou`` (0.5). An unmatched
detection is then, checked in this order:

* localisation: its best IoU with a box of its own class is in [``background_iou``, ``foreground_iou``];
* classification: it overlaps a box of another class with IoU >= ``foreground_iou``;
* duplicate: it overlaps an already matched box of its class with IoU >= ``foreground_iou``;
* background: no box of any class overlaps it by more than ``background_iou`` (0.1);
* both: anything else (wrong class and poorly placed).

An unmatched ground-truth box that some classification or localisation error points at is
counted as a false negative but not as missed (fixing that error finds it); the rest are missed.

The oracles, one cause at a time from the same starting point: a classification (localisation)
error on a box nobody found becomes a true positive of the box's (its own) class -- only the
highest-scoring such error per box, the others are removed; duplicate, background and both
errors are removed; a missed object is removed from the ground truth. AP is TIDE's: AP at
``foreground_iou`` (101-point interpolation, as COCO), averaged over the classes that have ground
truth or detections, where a class with detections but no ground truth scores 0.

Departures from the ``tidecv`` package, which the tests compare against: a detection inside a
crowd or difficult region (intersection over the detection's area >= ``foreground_iou``, as COCO
ignores crowds) is neither matched nor an error, where tidecv still gives it a cause; and equal
scores keep the detections' input order in every AP, where tidecv's order of equal scores
changes between its oracles.

Boxes: ``GroundTruth.boxes`` and ``DetectionSet.boxes`` are ``float64[., 4] xyxy`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth

CAUSES = ("classification", "localisation", "both", "duplicate", "background", "missed")
CLS, LOC, BOTH, DUPE, BKG, MISS = range(len(CAUSES))
TRUE_POSITIVE, IGNORED, COVERED = -1, -2, -3  # COVERED: unfound box a cls/loc error points at
SIZES = ("small", "medium", "large")
SMALL_AREA, LARGE_AREA = 32.0**2, 96.0**2  # COCO's limits


@dataclass(frozen=True)
class ErrorAssignment:
    """Per-detection and per-box outcome, in the inputs' order.

    ``det_cause: int64[K]``: an index into ``CAUSES``, ``TRUE_POSITIVE`` or ``IGNORED`` (in a
    crowd/difficult region, or beyond the image's ``max_detections`` highest scores).
    ``det_target: int64[K]``: for a true positive the box it matched; for the one classification
    or localisation error per box that the oracle turns into a true positive, that box; else -1.
    ``gt_cause: int64[N]``: ``TRUE_POSITIVE`` (found), ``IGNORED`` (crowd/difficult), ``COVERED``
    or ``MISS``.
    """

    det_cause: np.ndarray
    det_target: np.ndarray
    gt_cause: np.ndarray


def _overlap(boxes: np.ndarray, others: np.ndarray, *, crowd: bool = False) -> np.ndarray:
    """IoU of ``boxes: [K, 4] xyxy`` with ``others: [N, 4] xyxy`` -> ``[K, N]``; with ``crowd``,
    the share of each box inside each other box instead (COCO's IoU with a crowd region)."""
    top_left = np.maximum(boxes[:, None, :2], others[None, :, :2])
    bottom_right = np.minimum(boxes[:, None, 2:], others[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)[:, None]
    union = area if crowd else area + (others[:, 2:] - others[:, :2]).prod(-1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def assign_errors(
    ground_truth: GroundTruth,
    detections: DetectionSet,
    *,
    foreground_iou: float = 0.5,
    background_iou: float = 0.1,
    max_detections: int = 100,
) -> ErrorAssignment:
    """Match detections to boxes and give every false positive and unfound box its cause."""
    det_cause = np.full(len(detections), IGNORED, dtype=np.int64)
    det_target = np.full(len(detections), -1, dtype=np.int64)
    gt_cause = np.where(ground_truth.ignore, IGNORED, MISS).astype(np.int64)
    dets_by_image = _indices_by(detections.image_ids)
    gts_by_image = _indices_by(ground_truth.ann_image_ids)
    for image_id, det_index in dets_by_image.items():
        # Highest score first; equal scores keep input order, as COCOeval's mergesort does.
        det_index = det_index[np.argsort(-detections.scores[det_index], kind="stable")][:max_detections]
        all_gt = gts_by_image.get(image_id, np.zeros(0, dtype=np.int64))
        gt_index, crowd_index = all_gt[~ground_truth.ignore[all_gt]], all_gt[ground_truth.ignore[all_gt]]
        boxes, classes = detections.boxes[det_index], detections.category_ids[det_index]
        iou = _overlap(boxes, ground_truth.boxes[gt_index])
        same = classes[:, None] == ground_truth.ann_category_ids[gt_index][None, :]
        found = np.zeros(len(gt_index), dtype=bool)
        matched = np.zeros(len(det_index), dtype=bool)
        for row in range(len(det_index)):
            candidates = np.where(same[row] & ~found, iou[row], -1.0)
            if len(candidates) and candidates.max() >= foreground_iou:
                column = int(candidates.argmax())
                found[column], matched[row] = True, True
                det_cause[det_index[row]], det_target[det_index[row]] = TRUE_POSITIVE, gt_index[column]
        in_crowd = np.zeros(len(det_index), dtype=bool)
        if len(crowd_index):
            same_crowd = classes[:, None] == ground_truth.ann_category_ids[crowd_index][None, :]
            inside = _overlap(boxes, ground_truth.boxes[crowd_index], crowd=True) >= foreground_iou
            in_crowd = (inside & same_crowd).any(axis=1) & ~matched
        gt_cause[gt_index[found]] = TRUE_POSITIVE
        best_score: dict[int, float] = {}
        for row in np.flatnonzero(~matched & ~in_crowd):
            cause, column = _cause(iou[row], same[row], found, foreground_iou, background_iou)
            det = det_index[row]
            det_cause[det] = cause
            if column >= 0 and not found[column]:
                box = int(gt_index[column])
                gt_cause[box] = COVERED
                # Scores arrive in descending order, so the first error per box is the one to fix.
                if box not in best_score:
                    best_score[box] = float(detections.scores[det])
                    det_target[det] = box
    return ErrorAssignment(det_cause=det_cause, det_target=det_target, gt_cause=gt_cause)


def _cause(iou: np.ndarray, same: np.ndarray, found: np.ndarray, fg: float, bg: float) -> tuple[int, int]:
    """The cause of one false positive and the box a classification/localisation fix would find
    (-1 for the other causes). ``iou: [N]`` with the image's boxes, ``same: bool[N]`` same class."""
    if not len(iou):
        return BKG, -1
    same_iou = np.where(same, iou, 0.0)
    if bg <= same_iou.max() <= fg:
        return LOC, int(same_iou.argmax())
    other_iou = np.where(same, 0.0, iou)
    if other_iou.max() >= fg:
        return CLS, int(other_iou.argmax())
    if np.where(found, same_iou, 0.0).max() >= fg:
        return DUPE, -1
    if iou.max() <= bg:
        return BKG, -1
    return BOTH, -1


def _indices_by(keys: np.ndarray) -> dict[int, np.ndarray]:
    if not len(keys):
        return {}
    order = np.argsort(keys, kind="stable")
    values, starts = np.unique(keys[order], return_index=True)
    return {int(v): part for v, part in zip(values, np.split(order, starts[1:]), strict=True)}


def average_precision_101(scores: ArrayLike, true_positive: ArrayLike, num_gt: int) -> float:
    """COCO's 101-point interpolated AP of one class: precision made non-increasing from the right,
    read at recall 0, 0.01, ..., 1 (the first point reaching each recall; 0 where none does)."""
    scores, true_positive = np.asarray(scores, dtype=np.float64), np.asarray(true_positive, dtype=bool)
    if num_gt <= 0 or not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(true_positive[order])
    recall = hits / num_gt
    precision = np.maximum.accumulate((hits / np.arange(1, len(hits) + 1))[::-1])[::-1]
    at = np.searchsorted(recall, np.arange(101) / 100, side="left")
    return float(np.where(at < len(precision), precision[np.minimum(at, len(precision) - 1)], 0.0).mean())


def _class_aps(classes: np.ndarray, scores: np.ndarray, hits: np.ndarray, num_gt: np.ndarray) -> np.ndarray:
    """AP per class index ``0..C-1``; NaN for a class with neither boxes nor detections."""
    aps = np.full(len(num_gt), np.nan)
    for c in range(len(num_gt)):
        mine = classes == c
        if num_gt[c] > 0 or mine.any():
            aps[c] = average_precision_101(scores[mine], hits[mine], int(num_gt[c]))
    return aps


def _size_of(area: np.ndarray) -> np.ndarray:
    """Index into ``SIZES`` of each area (COCO: small < 32², large > 96²)."""
    return np.where(area < SMALL_AREA, 0, np.where(area > LARGE_AREA, 2, 1))


def _fraction_or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def error_breakdown(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    *,
    foreground_iou: float = 0.5,
    background_iou: float = 0.1,
    max_detections: int = 100,
) -> dict:
    """The error breakdown of COCO-format detections (see the module docstring).

    Returns:
        ``{"settings": {...}, "ap": TIDE's AP at foreground_iou, "dAP": {cause: AP gained},
        "dAP_false_positives": AP with every false positive scored below every true positive,
        "dAP_false_negatives": AP with every unfound box removed from the ground truth,
        "counts": {cause: n, "true_positives", "false_positives", "false_negatives", "ignored"},
        "by_size": {"false_positives" | "false_negatives" | cause: {"small", "medium", "large"}},
        "per_class": {name: {"ap": float | None, "dAP": {cause: float | None}, "counts": {cause: n}}}}``.
        Fractions in [0, 1]; a false positive's size is its box's area, a false negative's its
        annotation's ``area`` (COCO's rule). Per class, a false positive counts under the class
        it was detected as, a missed object under its own; a classification fix adds its AP to
        the object's class; values are None where the class has neither ground truth nor
        detections, before or after the fix.
    """
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    settings = {
        "foreground_iou": foreground_iou,
        "background_iou": background_iou,
        "max_detections": max_detections,
    }
    assignment = assign_errors(ground_truth, detections, **settings)
    cause, target = assignment.det_cause, assignment.det_target
    lookup = {category_id: index for index, category_id in enumerate(ground_truth.category_ids)}
    det_class = np.array([lookup[c] for c in detections.category_ids.tolist()], dtype=np.int64)
    gt_class = np.array([lookup[c] for c in ground_truth.ann_category_ids.tolist()], dtype=np.int64)
    num_classes = len(lookup)
    counted_gt = assignment.gt_cause != IGNORED
    num_gt = np.bincount(gt_class[counted_gt], minlength=num_classes)
    kept = cause != IGNORED
    hit = cause == TRUE_POSITIVE

    def aps(keep: np.ndarray, classes: np.ndarray, hits: np.ndarray, scores=None, boxes=num_gt) -> np.ndarray:
        scores = detections.scores if scores is None else scores
        return _class_aps(classes[keep], scores[keep], hits[keep], boxes)

    base = aps(kept, det_class, hit)
    fixed: dict[str, np.ndarray] = {}
    for index, name in enumerate(CAUSES):
        if index == MISS:
            missed = np.bincount(gt_class[assignment.gt_cause == MISS], minlength=num_classes)
            fixed[name] = aps(kept, det_class, hit, boxes=num_gt - missed)
            continue
        mine = cause == index
        fixable = mine & (target >= 0)
        classes = det_class.copy()
        if index == CLS:  # the oracle relabels the detection as the box it covers
            classes[fixable] = gt_class[target[fixable]]
        fixed[name] = aps(kept & (~mine | fixable), classes, hit | fixable)
    unfound = np.bincount(
        gt_class[(assignment.gt_cause == MISS) | (assignment.gt_cause == COVERED)], minlength=num_classes
    )
    perfect_precision = aps(kept, det_class, hit, scores=hit.astype(np.float64))
    perfect_recall = aps(kept, det_class, hit, boxes=num_gt - unfound)

    def gain(after: np.ndarray) -> float:
        # An oracle cannot lower AP; a negative difference would be interpolation noise. An
        # oracle that leaves no class to score (it removed every box) gains nothing measurable.
        if not (np.isfinite(base).any() and np.isfinite(after).any()):
            return 0.0
        return max(float(np.nanmean(after) - np.nanmean(base)), 0.0)

    det_size = _size_of((detections.boxes[:, 2:] - detections.boxes[:, :2]).prod(-1))
    gt_size = _size_of(np.array([a["area"] for a in ground_truth.dataset["annotations"]], dtype=np.float64))
    false_positive = kept & ~hit
    false_negative = (assignment.gt_cause == MISS) | (assignment.gt_cause == COVERED)

    def by_size(sizes: np.ndarray, selected: np.ndarray) -> dict[str, int]:
        counts = np.bincount(sizes[selected], minlength=3)
        return {size: int(n) for size, n in zip(SIZES, counts, strict=True)}

    sizes = {name: by_size(det_size, cause == index) for index, name in enumerate(CAUSES) if index != MISS}
    sizes["missed"] = by_size(gt_size, assignment.gt_cause == MISS)
    sizes["false_positives"] = by_size(det_size, false_positive)
    sizes["false_negatives"] = by_size(gt_size, false_negative)

    def cause_counts(det_selected: np.ndarray, gt_selected: np.ndarray) -> dict[str, int]:
        counts = {name: int((det_selected & (cause == index)).sum()) for index, name in enumerate(CAUSES)}
        counts["missed"] = int((gt_selected & (assignment.gt_cause == MISS)).sum())
        return counts

    per_class = {}
    for c, name in enumerate(ground_truth.category_names):
        per_class[name] = {
            "ap": _fraction_or_none(base[c]),
            "dAP": {
                cause_name: _fraction_or_none(max(after[c] - base[c], 0.0))
                for cause_name, after in fixed.items()
            },
            "counts": cause_counts(det_class == c, gt_class == c),
        }
    counts = cause_counts(np.ones(len(detections), dtype=bool), np.ones(len(gt_class), dtype=bool))
    counts.update(
        true_positives=int(hit.sum()),
        false_positives=int(false_positive.sum()),
        false_negatives=int(false_negative.sum()),
        ignored=int((~kept).sum()),
    )
    return {
        "settings": settings,
        "ap": float(np.nanmean(base)) if np.isfinite(base).any() else 0.0,
        "dAP": {name: gain(after) for name, after in fixed.items()},
        "dAP_false_positives": gain(perfect_precision),
        "dAP_false_negatives": gain(perfect_recall),
        "counts": counts,
        "by_size": sizes,
        "per_class": per_class,
    }
