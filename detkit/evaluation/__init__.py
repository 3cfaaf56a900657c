"""Evaluation: COCO (pycocotools or faster-coco-eval), VOC07 11-point and VOC2010+ area AP.

Everything takes COCO-format ground truth (dict or JSON path, ``bbox`` ``[x, y, w, h]``) and
COCO results (list or JSON path). ``evaluate`` runs every protocol, ``error_breakdown`` says why
detections are wrong (TIDE). Metrics only: printing, saving and drawing them is
``detkit.reporting``'s job.
"""

from detkit.evaluation.coco import COCO_METRIC_KEYS, coco_evaluate
from detkit.evaluation.confusion import confusion_matrix, format_confusion_matrix
from detkit.evaluation.errors import CAUSES, error_breakdown
from detkit.evaluation.evaluator import evaluate
from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth
from detkit.evaluation.results import detections_to_coco_results
from detkit.evaluation.voc import (
    ELEVEN_POINT_THRESHOLDS,
    PRCurve,
    average_precision_11point,
    average_precision_area,
    match_detections,
    precision_recall_curves,
    voc_evaluate,
)

__all__ = [
    "CAUSES",
    "COCO_METRIC_KEYS",
    "ELEVEN_POINT_THRESHOLDS",
    "DetectionSet",
    "GroundTruth",
    "PRCurve",
    "average_precision_11point",
    "average_precision_area",
    "coco_evaluate",
    "confusion_matrix",
    "detections_to_coco_results",
    "error_breakdown",
    "evaluate",
    "format_confusion_matrix",
    "load_detections",
    "load_ground_truth",
    "match_detections",
    "precision_recall_curves",
    "voc_evaluate",
]
