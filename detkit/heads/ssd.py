"""SSD head (Liu et al., 2016): on every source map a 3×3 convolution predicts, for each of the B
default boxes of a cell, C+1 class scores (0 = background) and 4 box deltas. On a feature pyramid
the predictions may read a tower of 3×3 convolutions shared by all levels first (``num_convs``).

Shapes: N images, L source levels, B default boxes per cell (per level), A default boxes of the
whole image (the sum over levels of H·W·B), G ground-truth boxes per image (padded to the batch
maximum), C object classes.

Training (batched, no per-image loop): each ground truth claims its best default box, then every
default box with IoU ≥ 0.5 is positive; hard-negative mining keeps 3 negatives per positive,
chosen by classification loss; smooth-L1 on deltas (weights (10, 10, 5, 5), the paper's variances
0.1/0.2) plus softmax cross-entropy, both divided by the number of positives in the batch.
Inference: softmax, decode, then one batched score filter → top-k → class-aware NMS → cap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.assign.hard_negative import hard_negative_mining
from detkit.assign.matcher import Matcher
from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.heads.dense_head_base import DenseHeadBase
from detkit.layers.conv_bn_act import conv_bn_act
from detkit.layers.norm import NORM_KINDS
from detkit.layers.shared_tower import per_level_norms, run_shared_tower, shared_conv_tower
from detkit.losses import smooth_l1, zero_loss
from detkit.ops.boxes import clip_boxes_per_image, pad_boxes, pad_values
from detkit.ops.image_sizes import host_image_sizes
from detkit.ops.iou import batched_box_iou
from detkit.priors.coverage import BlankBatch, Priors
from detkit.priors.default_boxes import SSD300_ASPECT_RATIOS, DefaultBoxGenerator
from detkit.structures import FeatureInfo, Target
from detkit.utils.stages import stage


def _prediction_conv(in_channels: int, out_channels: int, depthwise: bool) -> nn.Module:
    if not depthwise:
        return nn.Conv2d(in_channels, out_channels, 3, padding=1)
    # SSDLite: 3×3 depthwise + BN + ReLU6, then a 1×1 projection to the outputs.
    return nn.Sequential(
        *conv_bn_act(in_channels, in_channels, 3, padding=1, groups=in_channels, activation=nn.ReLU6),
        nn.Conv2d(in_channels, out_channels, 1),
    )


def _per_level_ratios(aspect_ratios: Sequence, num_levels: int) -> list[list[float]]:
    """A flat list of numbers applies to every level; a list of lists gives one per level."""
    if all(isinstance(r, int | float) for r in aspect_ratios):
        return [[float(r) for r in aspect_ratios]] * num_levels
    per_level = [[float(r) for r in level] for level in aspect_ratios]
    if len(per_level) != num_levels:
        raise ValueError(
            f"aspect_ratios has {len(per_level)} per-level lists but the SSD head gets {num_levels} source "
            "maps; give one list per source map (or one flat list for all)"
        )
    return per_level


class SSDHead(DenseHeadBase):
    """``forward(features) -> (class_logits: Tensor[N, A, C+1], deltas: Tensor[N, A, 4])``;
    ``loss`` and ``predict`` follow the single-stage detector's head contract.

    ``aspect_ratios``: per level, the ratios besides 1 (each r adds r and 1/r); see
    ``DefaultBoxGenerator`` for ``min_scale``, ``max_scale``, ``first_scale``, ``scales``.
    ``depthwise``: SSDLite prediction convolutions. ``num_convs``, ``norm``: a classification and a
    box tower of that many 3×3 convolutions before the prediction convolutions, shared by every
    level (which must then have one width, as an FPN gives; ``"bn"``: one BatchNorm per level);
    0 is the paper's head, a single convolution on each source map; ``tower_depthwise``: the towers'
    convolutions depthwise-separable. ``min_negatives``: hard negatives an image
    keeps even without positives (≤ ``neg_pos_ratio`` leaves the ratio exact elsewhere).
    Inputs must not be padded beyond the largest image (``size_divisor: 1``): default boxes span
    the image extent.
    """

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        num_classes: int,
        aspect_ratios: Sequence = SSD300_ASPECT_RATIOS,
        min_scale: float = 0.2,
        max_scale: float = 0.9,
        first_scale: float | None = 0.1,
        scales: Sequence[float] | None = None,
        clip_default_boxes: bool = False,
        depthwise: bool = False,
        num_convs: int = 0,
        norm: str = "bn",
        tower_depthwise: bool = False,
        iou_threshold: float = 0.5,
        neg_pos_ratio: float = 3.0,
        min_negatives: int = 3,
        box_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        box_loss_beta: float = 1.0,
        score_threshold: float = 0.01,
        pre_nms_topk: int = 1000,
        nms_threshold: float = 0.45,
        max_detections: int = 200,
    ) -> None:
        super().__init__(
            score_threshold=score_threshold, pre_nms_topk=pre_nms_topk, nms_threshold=nms_threshold,
            max_detections=max_detections,
        )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.feature_info = list(feature_info)
        self.num_classes = num_classes
        if num_convs < 0:
            raise ValueError(f"SSDHead: num_convs must be >= 0, got {num_convs}")
        if norm not in NORM_KINDS:
            raise ValueError(f"SSDHead: unknown norm {norm!r}; choose one of {', '.join(NORM_KINDS)}")
        widths = {info.channels for info in self.feature_info}
        if num_convs > 0 and len(widths) != 1:
            raise ValueError(
                f"SSDHead: num_convs={num_convs} builds towers shared by all source maps, which must have one "
                f"width; got {[(info.name, info.channels) for info in self.feature_info]} (put an FPN neck "
                "before it, or set num_convs=0)"
            )
        tower_width = next(iter(widths))
        levels = len(self.feature_info)
        self.cls_tower = shared_conv_tower(tower_width, num_convs, norm, depthwise=tower_depthwise)
        self.box_tower = shared_conv_tower(tower_width, num_convs, norm, depthwise=tower_depthwise)
        bn_towers = num_convs > 0 and norm == "bn"
        self.cls_level_norms = per_level_norms(tower_width, num_convs, levels) if bn_towers else None
        self.box_level_norms = per_level_norms(tower_width, num_convs, levels) if bn_towers else None
        ratios = _per_level_ratios(aspect_ratios, len(self.feature_info))
        self.default_boxes = DefaultBoxGenerator(
            ratios,
            min_scale=min_scale,
            max_scale=max_scale,
            first_scale=first_scale,
            scales=scales,
            clip=clip_default_boxes,
        )
        boxes_per_cell = self.default_boxes.num_boxes_per_location
        self.classifiers = nn.ModuleList(
            _prediction_conv(info.channels, b * (num_classes + 1), depthwise)
            for info, b in zip(self.feature_info, boxes_per_cell, strict=True)
        )
        self.regressors = nn.ModuleList(
            _prediction_conv(info.channels, b * 4, depthwise)
            for info, b in zip(self.feature_info, boxes_per_cell, strict=True)
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        self.matcher = Matcher(iou_threshold, iou_threshold, allow_low_quality=True)
        self.coder = DeltaXYWHCoder(box_weights)
        self.neg_pos_ratio = neg_pos_ratio
        self.min_negatives = min_negatives
        self.box_loss_beta = box_loss_beta

    def coverage_priors(self, detector: nn.Module, blank_batch: BlankBatch) -> Priors:
        """The default boxes placed on the detector's feature maps for a blank input."""
        batch, image_sizes = blank_batch()
        boxes = self.priors(detector.features(batch), image_sizes)
        return Priors("ssd", float(self.matcher.high), "IoU of placed default boxes", boxes=boxes.float().cpu())

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits, deltas = [], []
        for level, (info, classifier, regressor) in enumerate(
            zip(self.feature_info, self.classifiers, self.regressors, strict=True)
        ):
            x = features[info.name]
            n = x.shape[0]
            cls_features = run_shared_tower(self.cls_tower, self.cls_level_norms, x, level)
            box_features = run_shared_tower(self.box_tower, self.box_level_norms, x, level)
            # [N, B·k, H, W] → [N, H·W·B, k]: the default boxes' (y, x, box) order.
            logits.append(classifier(cls_features).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes + 1))
            deltas.append(regressor(box_features).permute(0, 2, 3, 1).reshape(n, -1, 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)

    def priors(self, features: dict[str, Tensor], image_sizes: Tensor) -> Tensor:
        """Default boxes ``Tensor[A, 4] xyxy`` for this batch's map sizes; the image extent is the
        largest image (height, width) of the batch."""
        host_sizes = host_image_sizes(image_sizes)  # no device sync: the sizes travel with the tensor
        if host_sizes is not None:
            extent = [max(size[0] for size in host_sizes), max(size[1] for size in host_sizes)]
        else:
            extent = [int(v) for v in image_sizes.max(dim=0).values.tolist()]
        sizes = [tuple(features[info.name].shape[-2:]) for info in self.feature_info]
        first, stride = sizes[0], self.feature_info[0].stride
        expected = (math.ceil(extent[0] / stride), math.ceil(extent[1] / stride))
        if tuple(first) != expected:
            raise ValueError(
                f"SSD head: source map {self.feature_info[0].name!r} (stride {stride}) is {first[0]}×{first[1]} "
                f"for {extent[0]}×{extent[1]} images, expected {expected[0]}×{expected[1]}: the batch is padded "
                "beyond the images; set the detector's size_divisor to 1"
            )
        device = features[self.feature_info[0].name].device
        return self.default_boxes(sizes, (extent[0], extent[1]), device=device)

    def loss(
        self, features: dict[str, Tensor], image_sizes: Tensor, targets: list[Target]
    ) -> dict[str, Tensor]:
        logits, deltas = self(features)
        priors = self.priors(features, image_sizes)
        num_images, num_priors = logits.shape[:2]
        gt_boxes, gt_valid = pad_boxes([t["boxes"].to(priors) for t in targets])
        with stage("assign"):
            matched_index, match_labels = self.matcher(batched_box_iou(gt_boxes, priors), gt_valid)
        positive = match_labels == 1
        negative = match_labels == 0
        if gt_boxes.shape[1] > 0:
            gt_labels = pad_values([t["labels"].to(priors.device) for t in targets], 0)
            class_targets = torch.where(positive, gt_labels.gather(1, matched_index), 0)
        else:
            class_targets = torch.zeros_like(matched_index)
        class_losses = F.cross_entropy(
            logits.reshape(-1, self.num_classes + 1).float(), class_targets.reshape(-1), reduction="none"
        ).view(num_images, num_priors)
        with stage("assign"):
            hard_negative = hard_negative_mining(
                class_losses.detach(),
                positive,
                negative,
                ratio=self.neg_pos_ratio,
                min_negatives=self.min_negatives,
            )
        normalizer = positive.sum().clamp(min=1)
        loss_cls = torch.where(positive | hard_negative, class_losses, 0.0).sum() / normalizer
        if gt_boxes.shape[1] == 0:
            loss_box = zero_loss(deltas)
        else:
            matched_boxes = gt_boxes.gather(1, matched_index[..., None].expand(-1, -1, 4))
            target_deltas = self.coder.encode(
                priors.expand_as(matched_boxes)[positive], matched_boxes[positive]
            )
            loss_box = smooth_l1(
                deltas[positive], target_deltas, beta=self.box_loss_beta, normalizer=normalizer
            )
        return {"loss_cls": loss_cls, "loss_box": loss_box}

    @torch.no_grad()
    def dense_predictions(self, features: dict[str, Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """What the postprocessing selects from: boxes ``Tensor[N, A, 4] xyxy`` in the input image's
        pixels (clipped to it) and object-class probabilities ``Tensor[N, A, C]``."""
        logits, deltas = self(features)
        priors = self.priors(features, image_sizes)
        scores = logits.float().softmax(dim=-1)[..., 1:]
        return clip_boxes_per_image(self.coder.decode(deltas, priors), image_sizes), scores
