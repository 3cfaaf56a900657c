"""How well a detector's priors cover a dataset's boxes: the best possible recall of its matcher.

A ground-truth box is *covered* when at least one prior reaches the matcher's IoU threshold with
it, compared the way that detector's assigner compares them:

- RPN anchors (Faster R-CNN): placed anchors ``xyxy`` at every cell of the feature map, IoU with
  the box; checked at IoU 0.5, and also reported at the matcher's ``fg_iou_threshold`` (0.7). The
  RPN's matcher makes each box's best anchor positive whatever its IoU (low-quality matches), so
  0.7 only tells how many boxes get more than that one anchor: on the built-in shapes, where the
  faster_rcnn_mobilenet_v1_shapes reaches mAP50 0.86, its anchors reach 0.7 for a quarter of the boxes (the
  anchors sit on a stride-8 grid, a few pixels off any box). 0.5 is where the RoI head takes a
  proposal for the object: an anchor below it has to regress far.
- SSD default boxes: placed boxes at every cell of every source map; threshold ``iou_threshold`` (0.5).
- YOLOv3 anchors: the anchor's (w, h) centred on the box (the grid cell is the box centre's
  own, so only the shape matters); threshold ``extra_positive_threshold``, else ``ignore_threshold``.
- YOLOv1, Fast R-CNN, R-CNN have no priors to check (a grid cell, or selective-search
  proposals whose recall ``tools/proposals.py`` reports): ``model_priors`` says so.

Boxes are in network-input pixels, i.e. after the letterbox (``letterboxed_boxes``), so that a
square input of ``input_size`` holds every image. Recall is also given per COCO scale bucket
(area < 32², < 96², larger, in input pixels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torchvision.ops import box_iou

from detkit.ops.iou import shape_iou

SCALE_BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("small", 0.0, 32.0**2), ("medium", 32.0**2, 96.0**2), ("large", 96.0**2, math.inf),
)  # fmt: skip
_CHUNK = 4096  # ground-truth boxes per IoU block: bounds memory at about 4096 × priors floats


@dataclass(frozen=True)
class Priors:
    """A detector's priors for one input size. ``kind`` is ``"rpn"``, ``"ssd"`` or ``"yolov3"``;
    exactly one of ``boxes: Tensor[A, 4] xyxy`` (placed, input pixels) or ``shapes: Tensor[K, 2]``
    (w, h compared centred) is set; ``iou_threshold`` is the one checked (the matcher's, but 0.5
    for the RPN), ``matcher_threshold`` the matcher's own; ``rule`` says how they are compared."""

    kind: str
    iou_threshold: float
    rule: str
    boxes: Tensor | None = None
    shapes: Tensor | None = None
    matcher_threshold: float | None = None


#: What a detector part's ``coverage_priors`` may call: the preprocessed blank input and its image sizes.
BlankBatch = Callable[[], tuple[Tensor, Tensor]]


def model_priors(model: nn.Module, input_size: int) -> Priors | str:
    """The priors ``model`` uses on a square ``input_size`` input (every letterboxed batch), or a
    sentence saying why the detector has none to check (YOLOv1, Fast R-CNN, R-CNN).

    The detector's head and proposal generator say what their priors are themselves, through a
    ``coverage_priors(detector, blank_batch)`` method (``Priors``, a sentence, or None when that
    part has nothing to say); ``blank_batch()`` is the preprocessed blank input and image sizes,
    for priors that are placed on feature maps."""
    head = getattr(model, "head", None)
    parts = [part for part in (head, getattr(model, "proposal_generator", None)) if hasattr(part, "coverage_priors")]
    unchecked = f"no prior coverage check for {type(head if head is not None else model).__name__}"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():

            def blank_batch() -> tuple[Tensor, Tensor]:
                device = next(model.parameters()).device
                return model.preprocess([torch.zeros(3, input_size, input_size, device=device)])

            for part in parts:
                priors = part.coverage_priors(model, blank_batch)
                if priors is not None:
                    return priors
            return unchecked
    finally:
        model.train(was_training)


def letterboxed_boxes(
    boxes_per_image: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], input_size: int
) -> Tensor:
    """Stored boxes → the model's input pixels under detkit's letterbox (longest side scaled to
    ``input_size``, padding right and bottom): ``boxes_per_image[i]: [N_i, 4] xyxy`` of an image of
    ``sizes[i] = (height, width)`` → ``Tensor[ΣN_i, 4] xyxy`` float32."""
    scaled = []
    for boxes, (height, width) in zip(boxes_per_image, sizes, strict=True):
        factor = input_size / max(height, width)
        # The resize rounds each side to whole pixels, so the two axes scale by slightly different factors.
        sx, sy = round(width * factor) / width, round(height * factor) / height
        scaled.append(
            torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)) * torch.tensor([sx, sy, sx, sy])
        )
    return torch.cat(scaled) if scaled else torch.zeros(0, 4)


def best_prior_iou(gt_boxes: Tensor, priors: Priors) -> Tensor:
    """For each ``gt_boxes: Tensor[M, 4] xyxy``, the highest IoU any prior reaches: ``Tensor[M]``."""
    gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4)
    best = []
    for start in range(0, gt_boxes.shape[0], _CHUNK):
        chunk = gt_boxes[start : start + _CHUNK]
        if priors.shapes is not None:
            iou = shape_iou(chunk[:, 2:] - chunk[:, :2], priors.shapes)
        else:
            iou = box_iou(chunk, priors.boxes)
        best.append(iou.max(dim=1).values if iou.shape[1] else torch.zeros(chunk.shape[0]))
    return torch.cat(best) if best else torch.zeros(0)


def prior_coverage(gt_boxes: Tensor, priors: Priors) -> dict:
    """The best possible recall of ``priors`` on ``gt_boxes: Tensor[M, 4] xyxy`` (input pixels):
    ``{"kind", "iou_threshold", "rule", "num_priors", "boxes", "recall", "mean_best_iou",
    "per_scale": {bucket: {"boxes", "recall"}}}`` (recall None for an empty bucket), and
    ``"recall_at_matcher_threshold"`` where the matcher's threshold is not the one checked; for
    placed priors also ``"shape_recall"``, the recall of the same prior shapes centred on each box."""
    gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float32).reshape(-1, 4)
    best = best_prior_iou(gt_boxes, priors)
    covered = best >= priors.iou_threshold - 1e-6  # the matcher's ">=" on float32 IoUs
    area = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    per_scale = {}
    for name, low, high in SCALE_BUCKETS:
        inside = (area >= low) & (area < high)
        count = int(inside.sum())
        per_scale[name] = {"boxes": count, "recall": round(float(covered[inside].float().mean()), 4) if count else None}
    count = int(gt_boxes.shape[0])
    prior_count = priors.boxes.shape[0] if priors.boxes is not None else priors.shapes.shape[0]
    report = {
        "kind": priors.kind,
        "iou_threshold": priors.iou_threshold,
        "rule": priors.rule,
        "num_priors": int(prior_count),
        "boxes": count,
        "recall": round(float(covered.float().mean()), 4) if count else None,
        "mean_best_iou": round(float(best.mean()), 4) if count else None,
        "per_scale": per_scale,
    }
    if priors.boxes is not None and count:
        # The same priors centred on each box: what their shapes alone allow. Far above ``recall``,
        # the grid is what misses the boxes (too coarse for them), not the sizes or ratios.
        shapes = torch.unique(priors.boxes[:, 2:] - priors.boxes[:, :2], dim=0)
        best_shape = best_prior_iou(gt_boxes, Priors(priors.kind, priors.iou_threshold, "shape", shapes=shapes))
        report["shape_recall"] = round(float((best_shape >= priors.iou_threshold - 1e-6).float().mean()), 4)
    if priors.matcher_threshold is not None and priors.matcher_threshold != priors.iou_threshold:
        at_matcher = best >= priors.matcher_threshold - 1e-6
        report["matcher_threshold"] = priors.matcher_threshold
        report["recall_at_matcher_threshold"] = round(float(at_matcher.float().mean()), 4) if count else None
    return report


# What each kind of priors is called in messages: "yolov3" is the grid anchors every YOLOv2-v4 head shares.
PRIOR_NAMES = {"rpn": "RPN anchors", "ssd": "SSD default boxes", "yolov3": "YOLO anchors"}


def coverage_line(report: dict) -> str:
    """One human-readable line of a ``prior_coverage`` report."""
    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    scales = ", ".join(f"{name} {percent(v['recall'])} of {v['boxes']}" for name, v in report["per_scale"].items())
    prior_name = PRIOR_NAMES.get(report["kind"], report["kind"] + " priors")
    line = (f"{prior_name} cover {percent(report['recall'])} of {report['boxes']} training boxes at IoU >= "
            f"{report['iou_threshold']:g} ({report['rule']}; {scales}; "
            f"mean best IoU {report['mean_best_iou']}")  # fmt: skip
    if "recall_at_matcher_threshold" in report:
        line += f"; {percent(report['recall_at_matcher_threshold'])} at the matcher's {report['matcher_threshold']:g}"
    return line + ")"
