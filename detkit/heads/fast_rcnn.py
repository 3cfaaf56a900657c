"""The Fast R-CNN RoI head, shared by Fast R-CNN (selective-search proposals) and Faster R-CNN
(RPN proposals): RoI pooling on one feature map, two FC layers, a (C+1)-way softmax classifier
and class-specific box regression.

Shapes: N images, P proposals per image (padded to the batch maximum), G ground-truth boxes per
image (padded), R sampled RoIs in the batch, C object classes (+1 background).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.assign.matcher import Matcher
from detkit.assign.sampler import BalancedSampler
from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.heads.roi_outputs import (
    BoxPredictor,
    padded_roi_detections,
    roi_detections,
    roi_losses,
    sample_rois,
    selection_settings,
    softmax_scores,
)
from detkit.ops.nms import PaddedDetections
from detkit.ops.roi import RoiKind, padded_rois, pool_rois, rois_from_boxes
from detkit.structures import Detections, Target


class TwoFCHead(nn.Module):
    """Pooled ``Tensor[R, C, k, k]`` → ``Tensor[R, representation_size]`` through fc6, fc7."""

    def __init__(self, in_features: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, pooled: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))


class FastRCNNHead(nn.Module):
    def __init__(
        self,
        *,
        in_channels: int,
        stride: int,
        num_classes: int,
        pool_size: int = 7,
        pooler: RoiKind = "roi_pool",
        representation_size: int = 1024,
        fg_iou_threshold: float = 0.5,
        bg_iou_range: Sequence[float] = (0.0, 0.5),
        batch_size_per_image: int = 128,
        positive_fraction: float = 0.25,
        add_gt_as_proposals: bool = True,
        box_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        box_loss_beta: float = 1.0,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
        pre_nms_topk: int = 1000,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.pool_size = pool_size
        self.pooler = pooler
        self.spatial_scale = 1.0 / stride
        self.box_head = TwoFCHead(in_channels * pool_size * pool_size, representation_size)
        self.predictor = BoxPredictor(representation_size, num_classes)
        self.matcher = Matcher(fg_iou_threshold, tuple(bg_iou_range), allow_low_quality=False)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.coder = DeltaXYWHCoder(box_weights)
        self.add_gt_as_proposals = add_gt_as_proposals
        self.box_loss_beta = box_loss_beta
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        # Per image, the best (RoI, class) pairs that go to NMS: bounds its cost (it grows with
        # the square of the candidates) when many RoIs clear score_threshold.
        self.pre_nms_topk = pre_nms_topk

    def _head(self, features: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        pooled = pool_rois(features, rois, output_size=self.pool_size, spatial_scale=self.spatial_scale, kind=self.pooler)
        return self.predictor(self.box_head(pooled))

    def loss(
        self, features: Tensor, proposals: list[Tensor], image_sizes: Tensor, targets: list[Target]
    ) -> dict[str, Tensor]:
        """Sample RoIs from the proposals (plus the ground truth), then classify and regress them.
        ``features: Tensor[N, C, H', W']`` the map RoIs are pooled from; ``image_sizes`` is part of
        the RoI-head contract (``detkit.heads.base.RoIHead``) and not needed here."""
        del image_sizes
        rois, class_targets, box_targets, is_positive, _ = sample_rois(
            proposals, targets, matcher=self.matcher, sampler=self.sampler, coder=self.coder,
            add_gt_as_proposals=self.add_gt_as_proposals,
        )
        class_logits, box_deltas = self._head(features, rois)
        return roi_losses(class_logits, box_deltas, class_targets, box_targets, is_positive, box_loss_beta=self.box_loss_beta)

    @torch.no_grad()
    def predict(self, features: Tensor, proposals: list[Tensor], image_sizes: Tensor) -> list[Detections]:
        """Score and refine every proposal, then run the batched postprocessing."""
        # Proposals stay float32 under autocast: bf16 would round them to 2 px steps from 256 px.
        rois, roi_image = rois_from_boxes([p.float() for p in proposals])
        roi_boxes = rois[:, 1:]
        class_logits, box_deltas = self._head(features, rois)
        return roi_detections(
            softmax_scores(class_logits),
            box_deltas,
            roi_boxes,
            roi_image,
            image_sizes,
            max_detections=self.max_detections,
            **selection_settings(self),
        )

    @torch.no_grad()
    def predict_padded(
        self, features: Tensor, proposals: Tensor, valid: Tensor, image_sizes: Tensor, max_detections: int
    ) -> PaddedDetections:
        """``predict`` on ``proposals: Tensor[N, P, 4] xyxy`` padded per image (``valid: Tensor[N,
        P]`` marks the real ones), with a fixed-shape result of ``max_detections`` per image."""
        # float32 RoIs, as predict's: bf16 under autocast would round them to 2 px steps.
        class_logits, box_deltas = self._head(features, padded_rois(proposals.float()))
        return padded_roi_detections(
            softmax_scores(class_logits),
            box_deltas,
            proposals,
            valid,
            image_sizes,
            max_detections=max_detections,
            **selection_settings(self),
        )
