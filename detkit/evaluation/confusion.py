"""Detection confusion matrix: which class each ground-truth object was detected as, if any."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth
from detkit.evaluation.voc import FALSE_POSITIVE, TRUE_POSITIVE, match_detections

BACKGROUND = "background"


def confusion_matrix(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    *,
    iou: float = 0.5,
    score_threshold: float = 0.3,
) -> tuple[np.ndarray, list[str]]:
    """Count ground truth against detections, class-agnostically matched.

    Detections scoring >= ``score_threshold`` are matched per image, in descending score order,
    each to the unmatched ground-truth box of highest IoU >= ``iou`` whatever its class (COCOeval's
    greedy rule, ``rule="coco"``, without the class condition), so a confident detection of the
    wrong class takes the object and shows up off the diagonal. COCO's rule rather than the VOC
    reference's: a second detection on an already-found object may still take a neighbour it
    overlaps enough, instead of being counted as background.

    Returns:
        ``matrix: int64[C + 1, C + 1]`` with rows = true class, columns = predicted class, in the
        ground truth's category-id order and ``background`` last: ``matrix[i, C]`` counts objects
        of class i that nothing detected, ``matrix[C, j]`` detections of class j that matched no
        object. Crowd/difficult objects are not counted, nor are the detections on them.
        And ``names: list[str]``, the C class names plus "background".
    """
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    names = [*ground_truth.category_names, BACKGROUND]
    index_of = {category_id: i for i, category_id in enumerate(ground_truth.category_ids)}
    to_index = np.vectorize(index_of.__getitem__, otypes=[np.int64])
    background = len(ground_truth.category_ids)
    matrix = np.zeros((background + 1, background + 1), dtype=np.int64)

    confident = detections.scores >= score_threshold
    det_class = to_index(detections.category_ids[confident]) if confident.any() else np.zeros(0, np.int64)
    gt_class = to_index(ground_truth.ann_category_ids) if len(ground_truth.boxes) else np.zeros(0, np.int64)
    match = match_detections(
        gt_image_ids=ground_truth.ann_image_ids,
        gt_boxes=ground_truth.boxes,
        gt_ignore=ground_truth.ignore,
        det_image_ids=detections.image_ids[confident],
        det_boxes=detections.boxes[confident],
        det_scores=detections.scores[confident],
        iou_threshold=iou,
        rule="coco",
    )
    hit = match.outcome == TRUE_POSITIVE
    np.add.at(matrix, (gt_class[match.gt_index[hit]], det_class[hit]), 1)
    missed = np.ones(len(gt_class), dtype=bool)
    missed[match.gt_index[hit]] = False
    missed &= ~ground_truth.ignore
    np.add.at(matrix, (gt_class[missed], background), 1)
    np.add.at(matrix, (background, det_class[match.outcome == FALSE_POSITIVE]), 1)
    return matrix, names


def format_confusion_matrix(matrix: np.ndarray, names: list[str]) -> str:
    """The matrix as text: one row per true class, one column per predicted class."""
    width = max(6, *(len(n) for n in names)) + 1
    header = "true \\ pred".ljust(width) + "".join(n.rjust(width) for n in names)
    rows = [
        name.ljust(width) + "".join(str(int(v)).rjust(width) for v in row)
        for name, row in zip(names, matrix, strict=True)
    ]
    return "\n".join([header, *rows])
