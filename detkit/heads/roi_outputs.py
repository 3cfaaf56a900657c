"""What every region-based head shares: sampling the training RoIs and, once it has one feature
vector per RoI, the (C+1)-way softmax classifier with class-specific box regression, its losses,
and the test-time decoding.
Used by the Fast/Faster R-CNN RoI head (pooled features) and the R-CNN head (warped crops).

Shapes: R RoIs, D feature size, C object classes (+1 background).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.assign.matcher import Matcher
from detkit.assign.sampler import BalancedSampler
from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.losses import cross_entropy, smooth_l1, zero_loss
from detkit.ops.boxes import clip_boxes_per_image, pad_boxes, pad_values
from detkit.ops.iou import batched_box_iou
from detkit.ops.nms import PaddedDetections, postprocess_padded, select_padded
from detkit.structures import Detections, Target


class BoxPredictor(nn.Module):
    """``Tensor[R, D]`` → ``class_logits: Tensor[R, C+1]`` and ``box_deltas: Tensor[R, C, 4]``."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_score = nn.Linear(in_features, num_classes + 1)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)
        # Small initial outputs: uniform class scores and boxes equal to their RoIs.
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(features), self.bbox_pred(features).view(-1, self.num_classes, 4)


def sample_rois(
    proposals: list[Tensor],
    targets: list[Target],
    *,
    matcher: Matcher,
    sampler: BalancedSampler,
    coder: DeltaXYWHCoder,
    add_gt_as_proposals: bool,
    per_image: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The training RoIs of a batch: proposals (plus the ground truth when ``add_gt_as_proposals``)
    matched to the ground truth and sampled, for every image at once.

    ``per_image``: the sampler's quota applies to each image (Fast/Faster R-CNN) or to the whole
    batch at once (R-CNN's paper samples uniformly over all images' RoIs). Returns ``rois:
    Tensor[R, 5]`` (image index, xyxy), ``class_targets: Tensor[R]`` in 0..C, ``box_targets:
    Tensor[R, 4]`` (deltas to the matched box; zero without ground truth), ``is_positive:
    Tensor[R]`` bool and ``overlap: Tensor[R]``, each RoI's IoU with its matched box.
    """
    if add_gt_as_proposals:
        proposals = [torch.cat((p, t["boxes"].to(p))) for p, t in zip(proposals, targets, strict=True)]
    proposal_boxes, proposal_valid = pad_boxes(proposals)
    gt_boxes, gt_valid = pad_boxes([t["boxes"].to(proposal_boxes) for t in targets])
    gt_labels = pad_values([t["labels"].to(proposal_boxes.device) for t in targets], 0)
    iou = batched_box_iou(gt_boxes, proposal_boxes)  # [N, G, P]
    matched_index, labels = matcher(iou, gt_valid)
    labels = labels.masked_fill(~proposal_valid, -1)
    if per_image:
        positive, negative = sampler(labels)
    else:
        positive, negative = (mask.view_as(labels) for mask in sampler(labels.reshape(1, -1)))
    image_index, proposal_index = torch.nonzero(positive | negative, as_tuple=True)
    boxes = proposal_boxes[image_index, proposal_index]
    is_positive = positive[image_index, proposal_index]
    if gt_boxes.shape[1] == 0:
        class_targets = torch.zeros_like(image_index)
        matched_boxes = boxes
        overlap = torch.zeros_like(boxes[:, 0])
    else:
        gt_index = matched_index[image_index, proposal_index]
        class_targets = torch.where(is_positive, gt_labels[image_index, gt_index], 0)
        matched_boxes = gt_boxes[image_index, gt_index]
        overlap = iou[image_index, gt_index, proposal_index]
    rois = torch.cat((image_index[:, None].to(boxes.dtype), boxes), dim=1)
    return rois, class_targets, coder.encode(boxes, matched_boxes), is_positive, overlap


def roi_losses(
    class_logits: Tensor,
    box_deltas: Tensor,
    class_targets: Tensor,
    box_targets: Tensor,
    regress: Tensor,
    *,
    box_loss_beta: float,
) -> dict[str, Tensor]:
    """``loss_cls`` (cross-entropy over the R RoIs, ``class_targets`` in 0..C) and ``loss_box``
    (smooth-L1 of the true class's deltas for the RoIs where ``regress: Tensor[R]`` is True,
    against ``box_targets: Tensor[R, 4]``), both summed and divided by R."""
    normalizer = max(class_logits.shape[0], 1)
    loss_cls = cross_entropy(class_logits, class_targets, normalizer=normalizer)
    chosen = regress.nonzero(as_tuple=True)[0]
    if chosen.numel() == 0:
        loss_box = zero_loss(box_deltas)
    else:
        predicted = box_deltas[chosen, class_targets[chosen] - 1]
        loss_box = smooth_l1(predicted, box_targets[chosen], beta=box_loss_beta, normalizer=normalizer)
    return {"loss_cls": loss_cls, "loss_box": loss_box}


def softmax_scores(class_logits: Tensor) -> Tensor:
    """``class_logits: Tensor[R, C+1]`` → object-class probabilities ``Tensor[R, C]`` (background dropped)."""
    return F.softmax(class_logits.float(), dim=1)[:, 1:]


def roi_candidates(
    class_scores: Tensor,
    box_deltas: Tensor,
    roi_boxes: Tensor,
    roi_image_sizes: Tensor,
    *,
    coder: DeltaXYWHCoder,
    score_threshold: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class box decoding of ``roi_boxes: Tensor[R, 4] xyxy``, clipped to each RoI's image
    (``roi_image_sizes: Tensor[R, 2]`` height, width). Returns ``boxes: Tensor[R, C, 4]``,
    ``scores: Tensor[R, C]`` float32 and ``keep: Tensor[R, C]`` bool, the (RoI, class) pairs
    above ``score_threshold`` whose box is not degenerate. ``class_scores: Tensor[R, C]`` in [0, 1]:
    the softmax's (``softmax_scores``) or any other classifier's, such as R-CNN's per-class SVMs."""
    scores = class_scores.float()
    boxes = clip_boxes_per_image(coder.decode(box_deltas, roi_boxes[:, None, :]), roi_image_sizes)
    keep = (
        (scores > score_threshold)
        & (boxes[..., 2] - boxes[..., 0] > 1e-2)
        & (boxes[..., 3] - boxes[..., 1] > 1e-2)
    )
    return boxes, scores, keep


def top_roi_candidates(
    boxes: Tensor, scores: Tensor, keep: Tensor, pre_nms_topk: int, *, fixed_size: bool = False
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The ``pre_nms_topk`` best (RoI, class) pairs of each image, from ``roi_candidates``' output
    padded per image: ``boxes: Tensor[N, P, C, 4]``, ``scores: Tensor[N, P, C]``, ``keep: Tensor[N,
    P, C]`` bool. Returns ``boxes: Tensor[N, k, 4] xyxy``, ``scores: Tensor[N, k]``, ``labels:
    Tensor[N, k]`` (1..C) and ``valid: Tensor[N, k]`` with k = min(pre_nms_topk, P·C), or exactly
    ``pre_nms_topk`` with ``fixed_size`` (invalid filler past P·C: torch.export cannot bound a k
    that depends on a dynamic P); kept pairs rank before the others, so the cap drops only the
    lowest-scoring candidates."""
    num_images, num_rois, num_classes = scores.shape
    flat_scores = torch.where(keep, scores, float("-inf")).reshape(num_images, num_rois * num_classes)
    flat_boxes = boxes.reshape(num_images, -1, 4)
    flat_keep = keep.reshape(num_images, -1)
    if fixed_size:
        flat_scores = torch.cat((flat_scores, flat_scores.new_full((num_images, pre_nms_topk), float("-inf"))), 1)
        flat_boxes = torch.cat((flat_boxes, flat_boxes.new_zeros((num_images, pre_nms_topk, 4))), 1)
        flat_keep = torch.cat((flat_keep, flat_keep.new_zeros((num_images, pre_nms_topk))), 1)
        k = pre_nms_topk
    else:
        k = min(pre_nms_topk, num_rois * num_classes)
    # Back in (RoI, class) order: NMS sorts stably, so tied scores keep the order they had before the cap.
    top_index = flat_scores.topk(k, dim=1).indices.sort(dim=1).values
    top_boxes = flat_boxes.gather(1, top_index[..., None].expand(-1, -1, 4))
    valid = flat_keep.gather(1, top_index)
    top_scores = torch.where(valid, flat_scores.gather(1, top_index), 0)
    return top_boxes, top_scores, top_index % num_classes + 1, valid


def roi_detections(
    class_scores: Tensor,
    box_deltas: Tensor,
    roi_boxes: Tensor,
    roi_image: Tensor,
    image_sizes: Tensor,
    *,
    coder: DeltaXYWHCoder,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    pre_nms_topk: int,
) -> list[Detections]:
    """``roi_candidates`` of the RoIs (from image ``roi_image: Tensor[R]``, image-major, of
    ``image_sizes: Tensor[N, 2]``), then per image the ``pre_nms_topk`` best (RoI, class) pairs,
    per-class NMS and the cap, for the whole batch at once."""
    boxes, scores, keep = roi_candidates(
        class_scores, box_deltas, roi_boxes, image_sizes[roi_image], coder=coder, score_threshold=score_threshold
    )
    # Pad the RoIs to [N, P] (P the most of any image): the cap and the NMS then work per row.
    num_images = image_sizes.shape[0]
    per_image = torch.bincount(roi_image, minlength=num_images)
    rank = (
        torch.arange(roi_image.numel(), device=roi_image.device) - (torch.cumsum(per_image, 0) - per_image)[roi_image]
    )
    width = max(int(per_image.max()), 1) if roi_image.numel() else 1
    slot = (roi_image, rank)
    num_classes = scores.shape[1]
    padded_boxes = boxes.new_zeros((num_images, width, num_classes, 4)).index_put(slot, boxes)
    padded_scores = scores.new_zeros((num_images, width, num_classes)).index_put(slot, scores)
    padded_keep = keep.new_zeros((num_images, width, num_classes)).index_put(slot, keep)
    top_boxes, top_scores, labels, valid = top_roi_candidates(padded_boxes, padded_scores, padded_keep, pre_nms_topk)
    return select_padded(
        top_boxes, top_scores, labels, valid, iou_threshold=nms_threshold, max_detections=max_detections
    ).to_list()


def padded_roi_detections(
    class_scores: Tensor,
    box_deltas: Tensor,
    proposals: Tensor,
    valid: Tensor,
    image_sizes: Tensor,
    *,
    coder: DeltaXYWHCoder,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
    pre_nms_topk: int,
) -> PaddedDetections:
    """``roi_detections`` for P proposals per image padded to one tensor, with a fixed-shape
    result: ``class_scores: Tensor[N·P, C]`` and ``box_deltas: Tensor[N·P, C, 4]`` of the RoIs of
    ``proposals: Tensor[N, P, 4] xyxy`` (image-major), of which ``valid: Tensor[N, P]`` are real."""
    num_images, num_proposals = valid.shape
    roi_image_sizes = image_sizes[:, None, :].expand(-1, num_proposals, -1).reshape(-1, 2)
    boxes, scores, keep = roi_candidates(
        class_scores,
        box_deltas,
        proposals.reshape(-1, 4),
        roi_image_sizes,
        coder=coder,
        score_threshold=score_threshold,
    )
    num_classes = scores.shape[1]
    # [N·P, C] → [N, P, C]: every (proposal, class) pair of an image is one candidate.
    top_boxes, top_scores, labels, top_valid = top_roi_candidates(
        boxes.reshape(num_images, num_proposals, num_classes, 4),
        scores.reshape(num_images, num_proposals, num_classes),
        (keep & valid.reshape(-1, 1)).reshape(num_images, num_proposals, num_classes),
        pre_nms_topk,
        fixed_size=True,
    )
    return postprocess_padded(
        top_boxes, top_scores, labels, top_valid, iou_threshold=nms_threshold, max_detections=max_detections
    )


def empty_detections(num_images: int, device: torch.device) -> list[Detections]:
    empty = torch.zeros((0, 4), device=device)
    return [
        {"boxes": empty, "scores": empty[:, 0], "labels": torch.zeros(0, dtype=torch.long, device=device)}
        for _ in range(num_images)
    ]
