"""The Fast R-CNN RoI head, shared by Fast R-CNN (selective-search proposals) and Faster R-CNN
(RPN proposals): RoI pooling on one feature map, two FC layers, a (C+1)-way softmax classifier
and class-specific box regression.

Shapes: N images, P proposals per image (padded to the batch maximum), G ground-truth boxes per
image (padded), R sampled RoIs in the batch, C object classes (+1 background).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from detkit.heads.roi_head_base import RoIHeadBase
from detkit.heads.roi_outputs import BoxPredictor, roi_losses, softmax_scores
from detkit.ops.roi import RoiKind, pool_rois
from detkit.structures import Target


class TwoFCHead(nn.Module):
    """Pooled ``Tensor[R, C, k, k]`` → ``Tensor[R, representation_size]`` through fc6, fc7."""

    def __init__(self, in_features: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, pooled: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))


class FastRCNNHead(RoIHeadBase):
    """RoI pooling (``pooler``: ``roi_pool`` or ``roi_align``, ``pool_size`` bins per side) on the
    map of stride ``stride``, fc6 and fc7 of width ``representation_size``, then the classifier and
    box regressor. Training samples ``batch_size_per_image`` RoIs per image; the other arguments
    are ``detkit.heads.roi_head_base.RoIHeadBase``'s."""

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
        super().__init__(
            num_classes=num_classes, fg_iou_threshold=fg_iou_threshold, bg_iou_range=bg_iou_range,
            sample_size=batch_size_per_image, positive_fraction=positive_fraction,
            add_gt_as_proposals=add_gt_as_proposals, box_weights=box_weights, box_loss_beta=box_loss_beta,
            score_threshold=score_threshold, nms_threshold=nms_threshold, max_detections=max_detections,
            pre_nms_topk=pre_nms_topk,
        )  # fmt: skip
        self.pool_size = pool_size
        self.pooler = pooler
        self.spatial_scale = 1.0 / stride
        self.box_head = TwoFCHead(in_channels * pool_size * pool_size, representation_size)
        self.predictor = BoxPredictor(representation_size, num_classes)

    def _head(self, features: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        pooled = pool_rois(
            features, rois, output_size=self.pool_size, spatial_scale=self.spatial_scale, kind=self.pooler
        )
        return self.predictor(self.box_head(pooled))

    def scores_and_deltas(self, features: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        class_logits, box_deltas = self._head(features, rois)
        return softmax_scores(class_logits), box_deltas

    def loss(
        self, features: Tensor, proposals: list[Tensor], image_sizes: Tensor, targets: list[Target]
    ) -> dict[str, Tensor]:
        """Sample RoIs from the proposals (plus the ground truth), then classify and regress them.
        ``features: Tensor[N, C, H', W']`` the map RoIs are pooled from; ``image_sizes`` is part of
        the RoI-head contract (``detkit.heads.base.RoIHead``) and not needed here."""
        del image_sizes
        rois, class_targets, box_targets, is_positive, _ = self.training_rois(proposals, targets)
        class_logits, box_deltas = self._head(features, rois)
        return roi_losses(
            class_logits, box_deltas, class_targets, box_targets, is_positive, box_loss_beta=self.box_loss_beta
        )
