"""Batched detection postprocessing: score filter → top-k → class-aware NMS → max detections.

One call handles the whole batch on the device: the image index is folded into the NMS group
id, so there is no per-image or per-class Python loop (torchvision's detection models loop over
images, which is where their inference time goes).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from detkit.structures import Detections


def postprocess_flat(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    image_index: Tensor,
    *,
    num_images: int,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
) -> list[Detections]:
    """NMS and per-image cap over candidates from many images.

    ``boxes: Tensor[M, 4] xyxy``, ``scores: Tensor[M]``, ``labels: Tensor[M]`` (1..C),
    ``image_index: Tensor[M]`` (0..num_images-1). Returns one ``Detections`` per image, sorted by
    descending score, at most ``max_detections`` each.
    """
    group = image_index if class_agnostic else image_index * (int(labels.max()) + 1 if labels.numel() else 1) + labels
    keep = batched_nms(boxes.float(), scores.float(), group, iou_threshold)  # sorted by score, descending
    kept_image = image_index[keep]
    # A stable sort by image keeps the score order inside each image, so a rank is a position.
    order = torch.sort(kept_image, stable=True).indices
    keep, kept_image = keep[order], kept_image[order]
    counts = torch.bincount(kept_image, minlength=num_images)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(keep.numel(), device=keep.device) - starts[kept_image]
    capped = rank < max_detections
    keep, kept_image = keep[capped], kept_image[capped]
    sizes = torch.bincount(kept_image, minlength=num_images).tolist()
    return [
        {"boxes": b, "scores": s, "labels": lab}
        for b, s, lab in zip(
            boxes[keep].split(sizes), scores[keep].split(sizes), labels[keep].split(sizes), strict=True
        )
    ]


def postprocess_dense(
    boxes: Tensor,
    scores: Tensor,
    *,
    score_threshold: float,
    pre_nms_topk: int,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
) -> list[Detections]:
    """Postprocess dense per-prior predictions for a batch.

    ``boxes``: ``Tensor[N, A, 4] xyxy`` (one box per prior, shared by the classes: SSD, YOLO) or
    ``Tensor[N, A, C, 4]`` (class-specific boxes: R-CNN heads). ``scores: Tensor[N, A, C]``
    probabilities of the C object classes (no background column); class c → label c + 1.
    Keeps, per image, the ``pre_nms_topk`` best (prior, class) pairs above ``score_threshold``.
    """
    num_images, num_priors, num_classes = scores.shape
    flat_scores = scores.reshape(num_images, num_priors * num_classes)
    k = min(pre_nms_topk, flat_scores.shape[1])
    top_scores, top_index = flat_scores.topk(k, dim=1)
    prior_index = top_index // num_classes
    class_index = top_index % num_classes
    image_index = torch.arange(num_images, device=scores.device)[:, None].expand(-1, k)
    if boxes.dim() == 4:
        top_boxes = boxes[image_index, prior_index, class_index]
    else:
        top_boxes = boxes[image_index, prior_index]
    above = top_scores > score_threshold
    return postprocess_flat(
        top_boxes[above],
        top_scores[above],
        class_index[above] + 1,
        image_index[above],
        num_images=num_images,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        class_agnostic=class_agnostic,
    )
