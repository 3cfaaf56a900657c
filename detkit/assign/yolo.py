"""Target assignment of the YOLO heads, for a whole batch at once.

Ground truth comes padded (``detkit.ops.boxes.pad_boxes``): ``gt_boxes: Tensor[N, G, 4] xyxy``
pixels of the batch canvas, ``gt_valid: Tensor[N, G]`` bool. Padding never takes part.

YOLOv1 (``assign_yolov1``): the cell that contains a ground truth's centre is responsible for it,
and of that cell's B predictors the one whose current box overlaps it most. A cell holds one
object: when several centres fall into one cell, the largest box is kept and the others are
dropped from the loss (the paper's grid has one set of class scores per cell, so it cannot
represent two objects there; ``num_dropped``, a 0-d tensor, counts them).

YOLOv3 (``assign_yolov3``): each ground truth goes to the one anchor, among all levels' anchors,
whose shape (both boxes centred at the origin) overlaps it most, at the cell of that anchor's level
that holds its centre. When two objects pick the same (cell, anchor), the better shape fit wins
and the other is dropped (counted); optionally (``extra_positive_threshold``) other well-fitting
anchors become positives too. A prior that is not positive but whose *predicted* box
overlaps some ground truth by more than ``ignore_threshold`` is ignored (no objectness loss), as
darknet does; the paper's text says "prior", its code compares the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from detkit.ops.boxes import box_area
from detkit.ops.iou import batched_box_iou, elementwise_box_iou, shape_iou


def one_per_slot(slots: Tensor, valid: Tensor, priority: Tensor, num_slots: int) -> Tensor:
    """Resolve collisions: ground truth ``g`` of image ``n`` wants slot ``slots[n, g]`` (0..num_slots-1).
    Per (image, slot), the valid candidate of highest ``priority`` wins, ties going to the lower
    index. Returns ``owner: Tensor[N, num_slots]`` long, the winning index into G or −1."""
    num_images, num_gt = slots.shape
    device = slots.device
    key = (torch.arange(num_images, device=device)[:, None] * num_slots + slots)[valid]
    best = torch.full((num_images * num_slots,), -torch.inf, device=device)
    best = best.scatter_reduce(0, key, priority[valid].float(), reduce="amax")
    is_best = priority[valid].float() == best[key]
    gt_index = torch.arange(num_gt, device=device).expand(num_images, -1)[valid]
    owner = torch.full((num_images * num_slots,), num_gt, device=device, dtype=torch.long)
    owner = owner.scatter_reduce(0, key[is_best], gt_index[is_best], reduce="amin")
    owner[owner == num_gt] = -1
    return owner.view(num_images, num_slots)


@dataclass
class YOLOv1Assignment:
    """``gt_index: Tensor[N, S·S]`` the object of each cell (−1: none); ``responsible: Tensor[N,
    S·S, B]`` bool; ``matched_boxes: Tensor[N, S·S, 4] xyxy`` (the cell's object, 0 where none);
    ``iou: Tensor[N, S·S, B]`` each predictor's IoU with its cell's object (0 where none)."""

    gt_index: Tensor
    responsible: Tensor
    matched_boxes: Tensor
    iou: Tensor
    num_dropped: Tensor


def assign_yolov1(
    gt_boxes: Tensor,
    gt_valid: Tensor,
    pred_boxes: Tensor,
    *,
    grid_size: tuple[int, int],
    cell_size: Tensor,
) -> YOLOv1Assignment:
    """``pred_boxes: Tensor[N, S_y·S_x, B, 4] xyxy`` (detached current predictions, cells row-major);
    ``grid_size`` (S_y, S_x); ``cell_size: Tensor[2]`` (w, h) of a cell in pixels."""
    rows, cols = grid_size
    num_images = gt_boxes.shape[0]
    centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
    col = (centres[..., 0] / cell_size[0]).floor().long().clamp(0, cols - 1)
    row = (centres[..., 1] / cell_size[1]).floor().long().clamp(0, rows - 1)
    owner = one_per_slot(row * cols + col, gt_valid, box_area(gt_boxes), rows * cols)
    has_object = owner >= 0
    num_dropped = gt_valid.sum() - has_object.sum()
    if gt_boxes.shape[1] == 0:
        matched = gt_boxes.new_zeros((num_images, rows * cols, 4))
    else:
        matched = gt_boxes.gather(1, owner.clamp(min=0)[..., None].expand(-1, -1, 4))
        matched = matched * has_object[..., None]
    iou = elementwise_box_iou(pred_boxes, matched[:, :, None, :]) * has_object[..., None]
    # Ties (e.g. all predictors missing the object at the start) go to the first predictor.
    best = iou.argmax(dim=-1, keepdim=True)
    responsible = torch.zeros_like(iou, dtype=torch.bool).scatter_(-1, best, True) & has_object[..., None]
    return YOLOv1Assignment(owner, responsible, matched, iou, num_dropped)


@dataclass
class YOLOv3Assignment:
    """``gt_index: Tensor[N, P]`` the object a prior predicts (−1: negative or ignored);
    ``ignore: Tensor[N, P]`` bool, non-positive priors excluded from the objectness loss."""

    gt_index: Tensor
    ignore: Tensor
    num_dropped: Tensor


def assign_yolov3(
    gt_boxes: Tensor,
    gt_valid: Tensor,
    pred_boxes: Tensor,
    *,
    anchors: Tensor,
    strides: tuple[int, ...],
    feature_sizes: list[tuple[int, int]],
    ignore_threshold: float = 0.5,
    extra_positive_threshold: float | None = None,
) -> YOLOv3Assignment:
    """``anchors: Tensor[L, A, 2]`` (w, h) pixels per level; ``strides`` and ``feature_sizes``
    (H_l, W_l) per level; ``pred_boxes: Tensor[N, P, 4] xyxy`` the detached decoded predictions
    in ``detkit.priors.grid`` order (level, y, x, anchor).

    ``extra_positive_threshold``: None (the paper) gives each object its best anchor only; a
    number also makes positive every other anchor whose shape IoU with the object exceeds it, at
    the cell of that anchor's level (darknet's later ``iou_thresh``, e.g. 0.213): more positives
    per object, faster training.
    """
    num_levels, num_anchors, _ = anchors.shape
    num_images, num_gt = gt_valid.shape
    device = gt_boxes.device
    gt_wh = (gt_boxes[..., 2:] - gt_boxes[..., :2]).float()
    fit = shape_iou(gt_wh, anchors.reshape(-1, 2))  # [N, G, L·A]
    candidate = F.one_hot(fit.argmax(dim=-1), num_levels * num_anchors).bool() if num_gt else fit > 1
    if extra_positive_threshold is not None:
        candidate |= fit > extra_positive_threshold
    # Every (object, anchor) pair's prior: the anchor's level, the object's centre cell there.
    level = torch.arange(num_levels, device=device).repeat_interleave(num_anchors)  # [L·A]
    anchor = torch.arange(num_anchors, device=device).repeat(num_levels)
    stride = torch.tensor(strides, device=device, dtype=torch.float32)[level]
    heights = torch.tensor([h for h, _ in feature_sizes], device=device)[level]
    widths = torch.tensor([w for _, w in feature_sizes], device=device)[level]
    level_sizes = torch.tensor([h * w * num_anchors for h, w in feature_sizes], device=device)
    level_starts = (torch.cumsum(level_sizes, 0) - level_sizes)[level]
    centres = (gt_boxes[..., None, :2] + gt_boxes[..., None, 2:]) / 2  # [N, G, 1, 2]
    col = torch.minimum((centres[..., 0] / stride).floor().long().clamp(min=0), widths - 1)
    row = torch.minimum((centres[..., 1] / stride).floor().long().clamp(min=0), heights - 1)
    slot = level_starts + (row * widths + col) * num_anchors + anchor  # [N, G, L·A]
    num_priors = int(level_sizes.sum())
    wanted = (candidate & gt_valid[..., None]).reshape(num_images, -1)
    owner = one_per_slot(slot.reshape(num_images, -1), wanted, fit.reshape(num_images, -1), num_priors)
    owner = torch.where(owner >= 0, owner // (num_levels * num_anchors), owner)
    # An object that lost every one of its priors to better-fitting objects is dropped.
    has_prior = torch.zeros((num_images, num_gt + 1), dtype=torch.bool, device=device)
    has_prior.scatter_(1, owner + 1, True)
    num_dropped = (gt_valid & ~has_prior[:, 1:]).sum()
    overlap = batched_box_iou(pred_boxes.float(), gt_boxes.float())  # [N, P, G]
    overlap = overlap.masked_fill(~gt_valid[:, None, :], 0.0)
    best_overlap = overlap.amax(dim=-1) if num_gt else overlap.new_zeros(overlap.shape[:2])
    ignore = (best_overlap > ignore_threshold) & (owner < 0)
    return YOLOv3Assignment(owner, ignore, num_dropped)
