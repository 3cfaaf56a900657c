"""Batched detection postprocessing: score filter → top-k per image → class-aware NMS → max detections.

The candidates of a batch are kept as padded ``[N, M]`` tensors with a validity mask from the
heads to the NMS (``detkit.ops.batched_nms``, which picks the faster call pattern for the device:
one NMS per image on CPU, one for the whole batch on CUDA), and the result has a fixed size per
image; the only host sync is reading the N counts at the end to hand out one ``Detections`` each.

Two outputs of the same selection: ``postprocess_flat`` / ``postprocess_dense`` return one
``Detections`` per image (ragged, for the PyTorch inference path), ``postprocess_padded`` /
``postprocess_dense_padded`` return fixed-shape tensors padded to ``max_detections`` with a count
per image, written without Python control flow on values so that a trace (TorchScript, ONNX)
records the whole selection and keeps the batch size dynamic (``detkit.export``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.ops import nms

from detkit.ops.batched_nms import Strategy, batched_nms_padded
from detkit.structures import Detections


class PaddedDetections(NamedTuple):
    """Detections of N images padded to K each: ``boxes: Tensor[N, K, 4] xyxy``, ``scores:
    Tensor[N, K]``, ``labels: Tensor[N, K]`` int64 (1..C; 0 in padding) and ``counts: Tensor[N]``
    int64, the number of real detections of each image (they come first, by descending score)."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor
    counts: Tensor

    def valid(self) -> Tensor:
        """``Tensor[N, K]`` bool: which rows are real detections."""
        slots = torch.arange(self.scores.shape[1], device=self.counts.device)
        return slots[None, :] < self.counts[:, None]

    def to_list(self) -> list[Detections]:
        """One ``Detections`` per image (views into the padded tensors). Reads the N counts: the
        one host sync of the postprocessing."""
        return [
            {"boxes": boxes[:count], "scores": scores[:count], "labels": labels[:count]}
            for boxes, scores, labels, count in zip(
                self.boxes, self.scores, self.labels, self.counts.tolist(), strict=True
            )
        ]


def select_padded(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    valid: Tensor,
    *,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
    strategy: Strategy = "auto",
) -> PaddedDetections:
    """Per-image, per-class NMS and cap over M candidates per image, returned padded to K =
    ``max_detections`` (zeros in padding). ``boxes: Tensor[N, M, 4] xyxy``, ``scores: Tensor[N,
    M]``, ``labels: Tensor[N, M]`` (1..C) and ``valid: Tensor[N, M]`` bool (the candidates that
    take part). Boxes and scores keep their dtype; ``strategy`` as ``batched_nms_padded``."""
    index, counts = batched_nms_padded(
        boxes, scores, labels, valid, iou_threshold=iou_threshold, max_detections=max_detections,
        class_agnostic=class_agnostic, strategy=strategy,
    )  # fmt: skip
    real = torch.arange(max_detections, device=index.device)[None, :] < counts[:, None]
    kept_boxes = boxes.gather(1, index[..., None].expand(-1, -1, 4))
    return PaddedDetections(
        torch.where(real[..., None], kept_boxes, 0),
        torch.where(real, scores.gather(1, index), 0),
        torch.where(real, labels.gather(1, index).long(), 0),
        counts,
    )


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
    strategy: Strategy = "auto",
) -> list[Detections]:
    """NMS and per-image cap over candidates from many images, given as one flat list.

    ``boxes: Tensor[M, 4] xyxy``, ``scores: Tensor[M]``, ``labels: Tensor[M]`` (1..C),
    ``image_index: Tensor[M]`` (0..num_images-1). Returns one ``Detections`` per image, sorted by
    descending score, at most ``max_detections`` each. (Candidates that are already one row per
    image go straight to ``select_padded``; this pads them first.)
    """
    # Each candidate's slot in its image's row: its rank among the candidates of that image.
    order = torch.sort(image_index, stable=True).indices
    sorted_image = image_index[order]
    per_image = torch.bincount(sorted_image, minlength=num_images)
    rank = torch.arange(order.numel(), device=order.device) - (torch.cumsum(per_image, 0) - per_image)[sorted_image]
    width = max(int(per_image.max()), 1) if order.numel() else 1
    slot = (sorted_image, rank)
    padded_boxes = boxes.new_zeros((num_images, width, 4)).index_put(slot, boxes[order])
    padded_scores = scores.new_zeros((num_images, width)).index_put(slot, scores[order])
    padded_labels = labels.new_zeros((num_images, width)).index_put(slot, labels[order])
    valid = torch.zeros((num_images, width), dtype=torch.bool, device=scores.device).index_put(
        slot, torch.ones_like(rank, dtype=torch.bool)
    )
    return select_padded(
        padded_boxes, padded_scores, padded_labels, valid, iou_threshold=iou_threshold,
        max_detections=max_detections, class_agnostic=class_agnostic, strategy=strategy,
    ).to_list()  # fmt: skip


def top_candidates(boxes: Tensor, scores: Tensor, pre_nms_topk: int) -> tuple[Tensor, Tensor, Tensor]:
    """The ``pre_nms_topk`` best (prior, class) pairs of each image.

    ``boxes``: ``Tensor[N, A, 4] xyxy`` (one box per prior, shared by the classes: SSD, YOLO) or
    ``Tensor[N, A, C, 4]`` (class-specific boxes). ``scores: Tensor[N, A, C]`` probabilities of the
    C object classes (no background column); class c → label c + 1. Returns ``boxes: Tensor[N, k,
    4]``, ``scores: Tensor[N, k]`` (descending) and ``labels: Tensor[N, k]`` with k = min(top-k, A·C).
    """
    num_images, num_priors, num_classes = scores.shape
    flat_scores = scores.reshape(num_images, num_priors * num_classes)
    k = min(pre_nms_topk, flat_scores.shape[1])
    top_scores, top_index = flat_scores.topk(k, dim=1)
    if boxes.dim() == 4:
        # Class-specific boxes flatten in the scores' (prior, class) order, so the index is shared.
        flat_boxes, box_index = boxes.reshape(num_images, num_priors * num_classes, 4), top_index
    else:
        flat_boxes, box_index = boxes, torch.div(top_index, num_classes, rounding_mode="floor")
    top_boxes = flat_boxes.gather(1, box_index[..., None].expand(-1, -1, 4))
    return top_boxes, top_scores, top_index % num_classes + 1


def postprocess_dense(
    boxes: Tensor,
    scores: Tensor,
    *,
    score_threshold: float,
    pre_nms_topk: int,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
    strategy: Strategy = "auto",
) -> list[Detections]:
    """Postprocess dense per-prior predictions for a batch (shapes as ``top_candidates``).

    Keeps, per image, the ``pre_nms_topk`` best (prior, class) pairs above ``score_threshold``.
    """
    top_boxes, top_scores, labels = top_candidates(boxes, scores, pre_nms_topk)
    return select_padded(
        top_boxes, top_scores, labels, top_scores > score_threshold, iou_threshold=iou_threshold,
        max_detections=max_detections, class_agnostic=class_agnostic, strategy=strategy,
    ).to_list()  # fmt: skip


def postprocess_dense_padded(
    boxes: Tensor,
    scores: Tensor,
    *,
    score_threshold: float,
    pre_nms_topk: int,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
) -> PaddedDetections:
    """``postprocess_dense`` with a fixed-shape result (see ``postprocess_padded``)."""
    top_boxes, top_scores, labels = top_candidates(boxes, scores, pre_nms_topk)
    return postprocess_padded(
        top_boxes,
        top_scores,
        labels,
        top_scores > score_threshold,
        iou_threshold=iou_threshold,
        max_detections=max_detections,
        class_agnostic=class_agnostic,
    )


def postprocess_padded(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    valid: Tensor,
    *,
    iou_threshold: float,
    max_detections: int,
    class_agnostic: bool = False,
) -> PaddedDetections:
    """``postprocess_flat`` on M candidates per image, returning fixed-shape tensors.

    ``boxes: Tensor[N, M, 4] xyxy`` (non-negative: clipped to the image), ``scores: Tensor[N, M]``,
    ``labels: Tensor[N, M]`` (1..C) and ``valid: Tensor[N, M]`` bool, the candidates that take
    part (above the score threshold, a real proposal, ...). Selects exactly what
    ``postprocess_flat`` selects from the valid candidates and returns it as ``PaddedDetections``
    with K = ``max_detections``.
    """
    num_images, num_candidates = scores.shape
    index = valid.reshape(-1).nonzero().squeeze(1)
    image_index = torch.div(index, num_candidates, rounding_mode="floor")
    flat_boxes = boxes.reshape(-1, 4)[index].float()
    flat_scores = scores.reshape(-1)[index].float()
    flat_labels = labels.reshape(-1)[index]
    if class_agnostic:
        group = image_index
    else:
        # The group numbering of postprocess_flat, from a maximum that is defined with no candidate.
        group = image_index * (torch.where(valid, labels, 0).max() + 1) + flat_labels
    # torchvision's batched_nms shifts the groups apart by the largest coordinate, but guards the
    # empty case with Python control flow that a trace would drop (and max() of nothing fails).
    extent = torch.where(valid[..., None], boxes, 0).max().float() + 1
    shifted = flat_boxes + (group.to(flat_boxes) * extent)[:, None]
    # Two sentinels that NMS always keeps (apart from everything, lowest scores), dropped after:
    # torchvision's nms tells torch.export that it keeps at least two boxes, and a .pt2 program
    # stops when it keeps fewer (pytorch/pytorch#121036).
    sentinels = torch.tensor([[-4.0, -4.0, -3.0, -3.0], [-2.0, -2.0, -1.0, -1.0]], device=shifted.device)
    lowest = torch.full((2,), torch.finfo(torch.float32).min, device=shifted.device)
    keep = nms(torch.cat((shifted, sentinels)), torch.cat((flat_scores, lowest)), iou_threshold)
    keep = keep[keep < index.shape[0]]
    # keep is by descending score; an entry's rank in its image is the count of earlier entries of it.
    kept_image = image_index[keep]
    # Expanded, not broadcast: torch.export cannot tell whether the (data-dependent) count is 1.
    images = torch.arange(num_images, device=index.device)[None, :].expand(kept_image.shape[0], -1)
    one_hot = (kept_image[:, None].expand_as(images) == images).long()
    rank = one_hot.cumsum(0).gather(1, kept_image[:, None]).squeeze(1) - 1
    chosen = (rank < max_detections).nonzero().squeeze(1)
    slot = (kept_image[chosen] * max_detections + rank[chosen],)
    source = keep[chosen]
    total = num_images * max_detections
    out_boxes = flat_boxes.new_zeros((total, 4)).index_put(slot, flat_boxes[source])
    out_scores = flat_scores.new_zeros(total).index_put(slot, flat_scores[source])
    out_labels = flat_labels.new_zeros(total, dtype=torch.long).index_put(slot, flat_labels[source].long())
    return PaddedDetections(
        out_boxes.view(num_images, max_detections, 4),
        out_scores.view(num_images, max_detections),
        out_labels.view(num_images, max_detections),
        one_hot.sum(0).clamp(max=max_detections),
    )
