"""Single-object classification + localisation metrics (the localiser's, ``detkit.heads.localization``).

Each scored image holds exactly one object and gets one prediction (its highest-scoring
detection). Per image, with the image's width W and height H:

- classification error: the predicted class is not the true one (an image without any
  prediction counts as an error);
- centre distance ``sqrt(((cx' - cx) / W)² + ((cy' - cy) / H)²)``, size distance
  ``sqrt(((w' - w) / W)² + ((h' - h) / H)²)`` and box distance, the Euclidean distance between the
  two normalised ``(cx, cy, w, h)`` vectors (the course's distance between expected and predicted
  box): over every image with a prediction, whatever its class;
- IoU of the predicted and the true box: averaged over the correctly classified images
  (``mean_iou``) and over all images with a prediction (``mean_iou_all``);
- localisation accuracy: right class and IoU >= 0.5 (ILSVRC's CLS-LOC criterion), over all images.

Boxes are ``xyxy`` pixels in :func:`localization_metrics`; COCO ``[x, y, w, h]`` in
:func:`localization_metrics_from_coco`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

from detkit.ops.boxes import xyxy_to_cxcywh


def localization_metrics(
    pred_boxes: Tensor, pred_labels: Tensor, gt_boxes: Tensor, gt_labels: Tensor, image_sizes: Tensor
) -> dict[str, float | int]:
    """``pred_boxes, gt_boxes: Tensor[M, 4] xyxy`` pixels, ``pred_labels, gt_labels: Tensor[M]``,
    ``image_sizes: Tensor[M, 2]`` (height, width): one row per image with a prediction.

    Returns ``classification_error``, ``centre_distance``, ``size_distance``, ``box_distance``,
    ``mean_iou`` (correctly classified images; None when there are none), ``mean_iou_all``,
    ``localization_accuracy`` (fractions; distances in image sizes) and ``images``.
    """
    count = int(pred_boxes.shape[0])
    if count == 0:
        raise ValueError("localization_metrics needs at least one image")
    for name, tensor in (("pred_boxes", pred_boxes), ("gt_boxes", gt_boxes), ("image_sizes", image_sizes)):
        if tensor.shape[0] != count:
            raise ValueError(f"{name} has {tensor.shape[0]} rows, pred_boxes {count}")
    pred_boxes, gt_boxes = pred_boxes.double(), gt_boxes.double()
    scale = image_sizes.double().flip(1).repeat(1, 2)  # (W, H, W, H)
    difference = (xyxy_to_cxcywh(pred_boxes) - xyxy_to_cxcywh(gt_boxes)) / scale
    iou = box_iou(pred_boxes, gt_boxes).diagonal()
    correct = pred_labels.long() == gt_labels.long()
    return {
        "images": count,
        "classification_error": float(1.0 - correct.double().mean()),
        "centre_distance": float(difference[:, :2].norm(dim=1).mean()),
        "size_distance": float(difference[:, 2:].norm(dim=1).mean()),
        "box_distance": float(difference.norm(dim=1).mean()),
        "mean_iou": float(iou[correct].mean()) if bool(correct.any()) else None,
        "mean_iou_all": float(iou.mean()),
        "localization_accuracy": float((correct & (iou >= 0.5)).double().mean()),
    }


def localization_metrics_from_coco(ground_truth: dict, results: list[dict]) -> dict[str, float | int | None]:
    """:func:`localization_metrics` of a COCO results list against COCO ground truth (``images``
    with ``width``/``height``, ``annotations`` with ``bbox`` ``[x, y, w, h]``).

    Only images with exactly one (non-crowd) object are scored; ``skipped_images`` counts the
    others. Each scored image's prediction is its highest-scoring result; an image without any
    counts as misclassified (``missing_predictions``) and is left out of the distances and IoUs.
    """
    objects: dict[int, list[dict]] = {}
    for annotation in ground_truth["annotations"]:
        if not annotation.get("iscrowd", 0):
            objects.setdefault(int(annotation["image_id"]), []).append(annotation)
    best: dict[int, dict] = {}
    for result in results:
        image_id = int(result["image_id"])
        if image_id not in best or result["score"] > best[image_id]["score"]:
            best[image_id] = result
    rows, skipped, missing = [], 0, 0
    for image in ground_truth["images"]:
        image_id = int(image["id"])
        annotations = objects.get(image_id, [])
        if len(annotations) != 1:
            skipped += 1
        elif image_id not in best:
            missing += 1
        else:
            rows.append((best[image_id], annotations[0], (image["height"], image["width"])))
    if not rows:
        return {"images": 0, "skipped_images": skipped, "missing_predictions": missing}

    def xyxy(box: list[float]) -> list[float]:
        return [box[0], box[1], box[0] + box[2], box[1] + box[3]]

    metrics = localization_metrics(
        torch.tensor([xyxy(p["bbox"]) for p, _, _ in rows], dtype=torch.float64),
        torch.tensor([int(p["category_id"]) for p, _, _ in rows]),
        torch.tensor([xyxy(g["bbox"]) for _, g, _ in rows], dtype=torch.float64),
        torch.tensor([int(g["category_id"]) for _, g, _ in rows]),
        torch.tensor([size for _, _, size in rows], dtype=torch.float64),
    )
    scored = len(rows) + missing
    # Images without a prediction are classification errors (and localisation failures) too.
    metrics["classification_error"] = (metrics["classification_error"] * len(rows) + missing) / scored
    metrics["localization_accuracy"] = metrics["localization_accuracy"] * len(rows) / scored
    metrics.update(images=scored, skipped_images=skipped, missing_predictions=missing)
    return metrics
