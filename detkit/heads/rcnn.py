"""The R-CNN head (Girshick et al., 2014): classify and refine each proposal from the backbone
features of its own warped crop.

The detector (``detkit.detectors.rcnn.RCNN``) owns the crops and the backbone and hands this head
a feature extractor ``features(rois: Tensor[R, 5]) -> Tensor[R, D]``; the head decides which RoIs
to look at (sampling in training, every proposal at test time), turns the pooled features into a
(C+1)-way softmax and class-specific box deltas, and owns the losses and the postprocessing.

Shapes: N images, P proposals per image (padded to the batch maximum), G ground-truth boxes per
image (padded), R RoIs, D pooled feature size, C object classes (+1 background).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from detkit.heads.class_svms import ClassSVMs, attach_svms, head_class_scores
from detkit.heads.roi_head_base import RoIHeadBase
from detkit.heads.roi_outputs import BoxPredictor, roi_losses
from detkit.structures import Target

FeatureExtractor = Callable[[Tensor], Tensor]
CLASSIFIERS = ("softmax", "svm")


class RCNNHead(RoIHeadBase):
    """(C+1)-way softmax classifier and class-specific box regressor on pooled crop features.

    Training samples ``rois_per_batch`` RoIs over the whole image batch, at most
    ``positive_fraction`` of them foreground (IoU ≥ ``fg_iou_threshold`` with a ground-truth box;
    the paper: 32 of 128), the rest background (best IoU in ``bg_iou_range``). Box regression
    learns from the foreground RoIs that overlap their object by ≥ ``box_iou_threshold`` (the
    paper: 0.6). ``hidden_dim`` > 0 adds a fully connected layer (ReLU, dropout) before the two
    outputs. Test time: every proposal is scored, boxes refined per class, then score threshold
    and per-class NMS.

    ``classifier``: what scores the classes at test time: ``softmax`` (the fine-tuned network's
    own) or ``svm``, the paper's per-class linear SVMs on the same features (``self.svms``),
    fitted after training by ``tools/fit_rcnn_svms.py``, which writes a checkpoint with this set.
    Box regression is the network's either way; ``box_refinement=False`` turns it off (no box
    loss, the proposals are the boxes), as in the plain sliding-window baseline.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        hidden_dim: int = 0,
        dropout: float = 0.0,
        fg_iou_threshold: float = 0.5,
        bg_iou_range: Sequence[float] = (0.0, 0.5),
        rois_per_batch: int = 128,
        positive_fraction: float = 0.25,
        add_gt_as_proposals: bool = True,
        box_iou_threshold: float = 0.6,
        box_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        box_loss_beta: float = 1.0,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.3,
        max_detections: int = 100,
        pre_nms_topk: int = 1000,
        classifier: str = "softmax",
        box_refinement: bool = True,
    ) -> None:
        if classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {classifier!r}")
        if box_iou_threshold < fg_iou_threshold:
            raise ValueError(
                f"box_iou_threshold {box_iou_threshold} must be >= fg_iou_threshold {fg_iou_threshold}"
            )
        super().__init__(
            num_classes=num_classes, fg_iou_threshold=fg_iou_threshold, bg_iou_range=bg_iou_range,
            sample_size=rois_per_batch, positive_fraction=positive_fraction,
            add_gt_as_proposals=add_gt_as_proposals, box_weights=box_weights, box_loss_beta=box_loss_beta,
            score_threshold=score_threshold, nms_threshold=nms_threshold, max_detections=max_detections,
            pre_nms_topk=pre_nms_topk,
        )  # fmt: skip
        layers: list[nn.Module] = []
        if hidden_dim > 0:
            layers += [nn.Linear(in_channels, hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            in_channels = hidden_dim
        elif dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.hidden = nn.Sequential(*layers)
        self.predictor = BoxPredictor(in_channels, num_classes)
        self.feature_dim = in_channels
        self.classifier = classifier
        self.svms = ClassSVMs(in_channels, num_classes) if classifier == "svm" else None
        self.box_iou_threshold = box_iou_threshold
        # False: the proposals are the boxes (the sliding-window baseline without its regressor).
        self.box_refinement = bool(box_refinement)

    def add_svms(self) -> ClassSVMs:
        """Give a softmax-trained head (unfitted) SVMs, for the paper's second training stage."""
        return attach_svms(self)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``features: Tensor[R, D]`` → ``class_logits: Tensor[R, C+1]``, ``box_deltas: Tensor[R, C, 4]``."""
        return self.predictor(self.hidden(features))

    def sample(
        self, proposals: list[Tensor], targets: list[Target], image_sizes: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Pick the training RoIs of the batch.

        Returns ``rois: Tensor[R, 5]`` (image index, xyxy), ``class_targets: Tensor[R]`` in 0..C,
        ``box_targets: Tensor[R, 4]`` (encoded deltas) and ``regress: Tensor[R]`` bool (which
        RoIs learn box regression). A batch with no RoI at all (no proposals, no objects) gets
        each whole image as one background RoI, so the loss stays defined and every weight gets
        a gradient.
        """
        # The paper samples a mini-batch uniformly over all images' RoIs, not a quota per image.
        rois, class_targets, box_targets, is_positive, overlap = self.training_rois(
            proposals, targets, per_image=False
        )
        if rois.shape[0] == 0:
            return self._whole_image_rois(image_sizes)
        regress = is_positive & (overlap >= self.box_iou_threshold)
        return rois, class_targets, box_targets, regress

    def _whole_image_rois(self, image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        num_images = image_sizes.shape[0]
        sizes = image_sizes.float()
        zeros = torch.zeros_like(sizes[:, 0])
        rois = torch.stack(
            (torch.arange(num_images, device=sizes.device).float(), zeros, zeros, sizes[:, 1], sizes[:, 0]), 1
        )
        labels = torch.zeros(num_images, dtype=torch.long, device=sizes.device)
        return rois, labels, torch.zeros_like(rois[:, 1:]), torch.zeros_like(labels, dtype=torch.bool)

    def loss(
        self, features: FeatureExtractor, proposals: list[Tensor], image_sizes: Tensor, targets: list[Target]
    ) -> dict[str, Tensor]:
        """``loss_cls`` (cross-entropy) and ``loss_box`` (smooth-L1 of the true class's deltas),
        both summed over the sampled RoIs and divided by their number."""
        rois, class_targets, box_targets, regress = self.sample(proposals, targets, image_sizes)
        if not self.box_refinement:
            regress = torch.zeros_like(regress)
        class_logits, box_deltas = self(features(rois))
        return roi_losses(
            class_logits, box_deltas, class_targets, box_targets, regress, box_loss_beta=self.box_loss_beta
        )

    def scores_and_deltas(self, features: FeatureExtractor, rois: Tensor) -> tuple[Tensor, Tensor]:
        """Every RoI through ``features`` (it may work in chunks), the hidden layer and the outputs."""
        hidden = self.hidden(features(rois))
        class_logits, box_deltas = self.predictor(hidden)
        if not self.box_refinement:
            box_deltas = torch.zeros_like(box_deltas)
        return head_class_scores(self, hidden, class_logits), box_deltas
