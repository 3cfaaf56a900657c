"""Region proposal network (Faster R-CNN): objectness and box deltas for A anchors per cell.

Shapes: N images, H×W feature cells, A anchors per cell (3 sizes × 3 ratios = 9), G ground-truth
boxes per image (padded to the batch maximum). The loss is computed for the whole batch at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.assign.matcher import Matcher
from detkit.assign.sampler import BalancedSampler
from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.layers.conv_bn_act import conv_bn_act
from detkit.losses import binary_cross_entropy, smooth_l1, zero_loss
from detkit.ops.boxes import clip_boxes_per_image, pad_boxes
from detkit.ops.iou import batched_box_iou
from detkit.ops.nms import postprocess_padded, select_padded
from detkit.priors.anchors import AnchorGenerator
from detkit.priors.coverage import BlankBatch, Priors
from detkit.structures import Target
from detkit.utils.stages import stage


class RPN(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int,
        stride: int,
        anchor_sizes: Sequence[float] = (128.0, 256.0, 512.0),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        conv_channels: int | None = None,
        fg_iou_threshold: float = 0.7,
        bg_iou_threshold: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        pre_nms_topk_train: int = 2000,
        post_nms_topk_train: int = 2000,
        pre_nms_topk_test: int = 1000,
        post_nms_topk_test: int = 1000,
        nms_threshold: float = 0.7,
        min_size: float = 1.0,
        box_loss_beta: float = 1.0 / 9,
    ) -> None:
        super().__init__()
        self.anchor_generator = AnchorGenerator(anchor_sizes, aspect_ratios, stride)
        num_anchors = self.anchor_generator.num_anchors_per_location
        conv_channels = conv_channels or in_channels
        self.conv = nn.Sequential(*conv_bn_act(in_channels, conv_channels, 3, padding=1, batch_norm=False))
        self.objectness = nn.Conv2d(conv_channels, num_anchors, 1)
        self.deltas = nn.Conv2d(conv_channels, num_anchors * 4, 1)
        for layer in (self.conv[0], self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        self.matcher = Matcher(fg_iou_threshold, bg_iou_threshold, allow_low_quality=True)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.coder = DeltaXYWHCoder((1.0, 1.0, 1.0, 1.0))
        self.pre_nms_topk = {True: pre_nms_topk_train, False: pre_nms_topk_test}
        self.post_nms_topk = {True: post_nms_topk_train, False: post_nms_topk_test}
        self.nms_threshold = nms_threshold
        self.min_size = min_size
        self.box_loss_beta = box_loss_beta

    def coverage_priors(self, detector: nn.Module, blank_batch: BlankBatch) -> Priors | None:
        """The anchors placed on the detector's one feature map for a blank input; None for a
        detector without a single named feature map (FPN), whose anchors are not checked."""
        if getattr(detector, "feature_name", None) is None:
            return None
        batch, _ = blank_batch()
        feature = detector.features(batch)
        boxes = self.anchor_generator(*feature.shape[-2:]).float().cpu()
        # An anchor counts as covering a box at 0.5 even when the matcher's foreground bar is higher.
        fg = float(self.matcher.high)
        return Priors("rpn", min(fg, 0.5), "IoU of placed anchors", boxes=boxes, matcher_threshold=fg)

    def forward(
        self, features: Tensor, image_sizes: Tensor, targets: list[Target] | None = None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """``features: Tensor[N, C, H, W]`` → proposals (list of ``Tensor[P_i, 4] xyxy``, detached)
        and, when ``targets`` are given in training, ``loss_rpn_cls`` and ``loss_rpn_box``."""
        objectness, deltas, anchors = self._outputs(features)
        boxes, scores, valid = self._candidates(objectness.detach(), deltas.detach(), anchors, image_sizes)
        kept = select_padded(
            boxes,
            scores,
            torch.ones_like(valid, dtype=torch.long),
            valid,
            iou_threshold=self.nms_threshold,
            max_detections=self.post_nms_topk[self.training],
            class_agnostic=True,
        ).to_list()
        proposals = [detections["boxes"] for detections in kept]
        losses: dict[str, Tensor] = {}
        if self.training and targets is not None:
            losses = self._loss(objectness, deltas, anchors, targets)
        return proposals, losses

    @torch.no_grad()
    def padded_proposals(self, features: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """The proposals of ``forward`` in one fixed-shape tensor: ``boxes: Tensor[N, K, 4] xyxy``
        and ``valid: Tensor[N, K]`` bool, K the post-NMS top-k of the current mode (best first)."""
        objectness, deltas, anchors = self._outputs(features)
        boxes, scores, valid = self._candidates(objectness, deltas, anchors, image_sizes)
        limit = self.post_nms_topk[self.training]
        kept = postprocess_padded(
            boxes,
            scores,
            torch.ones_like(valid, dtype=torch.long),
            valid,
            iou_threshold=self.nms_threshold,
            max_detections=limit,
            class_agnostic=True,
        )
        rank = torch.arange(limit, device=boxes.device)
        return kept.boxes, rank[None, :] < kept.counts[:, None]

    def _outputs(self, features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """→ objectness logits ``Tensor[N, H·W·A]``, deltas ``Tensor[N, H·W·A, 4]`` and the anchors
        ``Tensor[H·W·A, 4] xyxy``."""
        num_images, _, height, width = features.shape
        hidden = self.conv(features)
        # [N, A, H, W] → [N, H·W·A] so that the order matches the anchors' (y, x, anchor).
        objectness = self.objectness(hidden).permute(0, 2, 3, 1).reshape(num_images, -1)
        deltas = self.deltas(hidden).permute(0, 2, 3, 1).reshape(num_images, -1, 4)
        return objectness, deltas, self.anchor_generator(height, width)

    def _candidates(
        self, objectness: Tensor, deltas: Tensor, anchors: Tensor, image_sizes: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The pre-NMS top-k anchors of each image, decoded and clipped: ``boxes: Tensor[N, k, 4]``,
        their objectness logits ``Tensor[N, k]`` and ``valid: Tensor[N, k]`` (not under min_size)."""
        k = min(self.pre_nms_topk[self.training], objectness.shape[1])
        top_scores, top_index = objectness.topk(k, dim=1)
        top_deltas = deltas.gather(1, top_index[..., None].expand(-1, -1, 4))
        boxes = clip_boxes_per_image(self.coder.decode(top_deltas, anchors[top_index]), image_sizes)
        sizes_ok = ((boxes[..., 2] - boxes[..., 0]) >= self.min_size) & (
            (boxes[..., 3] - boxes[..., 1]) >= self.min_size
        )
        return boxes, top_scores, sizes_ok

    def _loss(self, objectness: Tensor, deltas: Tensor, anchors: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        gt_boxes, gt_valid = pad_boxes([t["boxes"] for t in targets])
        with stage("assign"):
            matched_index, labels = self.matcher(batched_box_iou(gt_boxes, anchors), gt_valid)
            positive, negative = self.sampler(labels)
        sampled = positive | negative
        normalizer = sampled.sum().clamp(min=1)
        loss_cls = binary_cross_entropy(objectness[sampled], positive[sampled], normalizer=normalizer)
        if gt_boxes.shape[1] == 0:
            loss_box = zero_loss(deltas)
        else:
            matched_boxes = gt_boxes.gather(1, matched_index[..., None].expand(-1, -1, 4))
            target_deltas = self.coder.encode(anchors.expand_as(matched_boxes)[positive], matched_boxes[positive])
            loss_box = smooth_l1(deltas[positive], target_deltas, beta=self.box_loss_beta, normalizer=normalizer)
        return {"loss_rpn_cls": loss_cls, "loss_rpn_box": loss_box}
