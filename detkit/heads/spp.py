"""The SPP-net detection head (He et al., 2014): spatial pyramid pooling of each proposal on the
last conv map, fully connected layers, a (C+1)-way softmax classifier and class-specific box
regression; optionally the paper's per-class linear SVMs on the last FC layer's features.

The pyramid (``detkit.ops.spatial_pyramid``; the paper: 6 × 6, 3 × 3, 2 × 2 and 1 × 1 bins, max
pooling) turns a RoI of any size and shape into one fixed-length vector, so the convolutions run
once per image and only the FC layers run per RoI (the paper's 24–102× over R-CNN at test time).

Shapes: N images, P proposals per image, R RoIs, D = channels · Σ n² pooled size, F the FC
layers' width, C object classes (+1 background).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from detkit.heads.class_svms import ClassSVMs, attach_svms, head_class_scores
from detkit.heads.fast_rcnn import TwoFCHead
from detkit.heads.rcnn import CLASSIFIERS
from detkit.heads.roi_head_base import RoIHeadBase
from detkit.heads.roi_outputs import BoxPredictor, roi_losses
from detkit.ops.spatial_pyramid import SPP_NET_LEVELS, pyramid_length, spatial_pyramid_pool
from detkit.structures import Target


class SPPHead(RoIHeadBase):
    """``levels``: bins per side of each pyramid level; ``representation_size``: width F of fc6
    and fc7. Training samples ``batch_size_per_image`` RoIs per image, at most
    ``positive_fraction`` foreground (IoU ≥ ``fg_iou_threshold``), the rest background (best IoU
    in ``bg_iou_range``; the paper: 1 : 3 over [0.5, 1] and [0.1, 0.5)).

    ``classifier``: what scores the classes at test time: ``softmax`` (the fine-tuned network's)
    or ``svm``, the paper's per-class linear SVMs on fc7 (``self.svms``), fitted after training by
    ``detkit fit-svms``. Box regression is the network's either way.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        stride: int,
        num_classes: int,
        levels: Sequence[int] = SPP_NET_LEVELS,
        representation_size: int = 4096,
        fg_iou_threshold: float = 0.5,
        bg_iou_range: Sequence[float] = (0.1, 0.5),
        batch_size_per_image: int = 128,
        positive_fraction: float = 0.25,
        add_gt_as_proposals: bool = True,
        box_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        box_loss_beta: float = 1.0,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.3,
        max_detections: int = 100,
        pre_nms_topk: int = 1000,
        classifier: str = "softmax",
    ) -> None:
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
        super().__init__(
            num_classes=num_classes, fg_iou_threshold=fg_iou_threshold, bg_iou_range=bg_iou_range,
            sample_size=batch_size_per_image, positive_fraction=positive_fraction,
            add_gt_as_proposals=add_gt_as_proposals, box_weights=box_weights, box_loss_beta=box_loss_beta,
            score_threshold=score_threshold, nms_threshold=nms_threshold, max_detections=max_detections,
            pre_nms_topk=pre_nms_topk,
        )  # fmt: skip
        self.levels = tuple(levels)
        self.spatial_scale = 1.0 / stride
        self.hidden = TwoFCHead(pyramid_length(in_channels, self.levels), representation_size)
        self.predictor = BoxPredictor(representation_size, num_classes)
        self.feature_dim = representation_size
        self.classifier = classifier
        self.svms = ClassSVMs(representation_size, num_classes) if classifier == "svm" else None

    def add_svms(self) -> ClassSVMs:
        """Give a softmax-trained head (unfitted) SVMs, for the paper's SVM stage."""
        return attach_svms(self)

    def fc_features(self, features: Tensor, rois: Tensor) -> Tensor:
        """``features: Tensor[N, C, H', W']``, ``rois: Tensor[R, 5]`` → fc7 ``Tensor[R, F]``: the
        features the classifier (softmax or SVMs) and the box regressor read."""
        pooled = spatial_pyramid_pool(features, rois, levels=self.levels, spatial_scale=self.spatial_scale)
        return self.hidden(pooled)

    def scores_and_deltas(self, features: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.fc_features(features, rois)
        class_logits, box_deltas = self.predictor(hidden)
        return head_class_scores(self, hidden, class_logits), box_deltas

    def loss(
        self, features: Tensor, proposals: list[Tensor], image_sizes: Tensor, targets: list[Target]
    ) -> dict[str, Tensor]:
        """``loss_cls`` (cross-entropy) and ``loss_box`` (smooth-L1 of the true class's deltas),
        summed over the sampled RoIs and divided by their number. ``image_sizes`` is part of the
        RoI-head contract (``detkit.heads.base.RoIHead``) and not needed here."""
        del image_sizes
        rois, class_targets, box_targets, is_positive, _ = self.training_rois(proposals, targets)
        class_logits, box_deltas = self.predictor(self.fc_features(features, rois))
        return roi_losses(
            class_logits, box_deltas, class_targets, box_targets, is_positive, box_loss_beta=self.box_loss_beta
        )
