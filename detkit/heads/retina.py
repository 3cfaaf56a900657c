"""RetinaNet head (Lin et al., 2017, arXiv 1708.02002): a classification and a box subnet, each
shared by every pyramid level, over A anchors per location (3 octave scales × 3 aspect ratios = 9).

Shapes: N images, L pyramid levels of H_l × W_l cells, A anchors per cell, P = Σ_l H_l·W_l·A
anchors of the image (level by level, each in ``detkit.priors.anchors`` (y, x, anchor) order),
C classes, G ground-truth boxes per image (padded to the batch maximum).

Subnets: ``num_convs`` 3×3 convolutions (with ReLU, optionally GroupNorm) then a 3×3 predictor of
A·C class logits (sigmoids: no background column) or A·4 box deltas
(``detkit.coders.delta_xywh``). The class predictor's bias starts at −log((1 − π)/π), so every
anchor begins with foreground probability π = 0.01 and the ~10⁴ background anchors do not
dominate the first iterations.

Training (batched): the IoU matcher (``detkit.assign.matcher``) labels anchors positive at
IoU ≥ 0.5, negative below 0.4, ignored in between (each object also claims its best anchors);
the sigmoid focal loss (α 0.25, γ 2, ``detkit.losses.focal``) over all non-ignored anchors and
the box loss over positives, both divided by the number of positive anchors in the batch.
Inference: sigmoid scores and decoded boxes of all levels, then one batched postprocessing
(per-image top-k over all levels → score filter → class-aware NMS → cap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.assign.matcher import Matcher
from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.heads.dense_head_base import DenseHeadBase
from detkit.layers.shared_tower import per_level_norms, run_shared_tower, shared_conv_tower
from detkit.losses import focal_loss, smooth_l1, zero_loss
from detkit.losses.iou import IOU_LOSS_KINDS, iou_loss
from detkit.ops.boxes import clip_boxes_per_image, pad_boxes, pad_values
from detkit.ops.iou import batched_box_iou
from detkit.priors.anchors import AnchorGenerator
from detkit.structures import FeatureInfo, Target
from detkit.utils.stages import stage

RETINA_BOX_LOSSES = ("smooth_l1", *IOU_LOSS_KINDS)
OCTAVE_SCALES = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))


def paper_anchor_sizes(strides: Sequence[int]) -> list[list[float]]:
    """The paper's anchors: base size 4·stride (32 on p3 … 512 on p7) times 2^0, 2^(1/3), 2^(2/3)."""
    return [[4.0 * stride * scale for scale in OCTAVE_SCALES] for stride in strides]


class RetinaNetHead(DenseHeadBase):
    """``forward(features) -> (class_logits: Tensor[N, P, C], deltas: Tensor[N, P, 4])``; ``loss``
    and ``predict`` follow the dense-head contract (``detkit.heads.base.DenseHead``).

    ``feature_info``: the pyramid levels (all of the same width, as an FPN gives). ``anchor_sizes``:
    one list of sizes (√area, input pixels) per level, shallow to deep; None gives the paper's
    (``paper_anchor_sizes``). ``aspect_ratios`` (height / width) apply on every level.
    ``num_convs``, ``norm``: depth and normalisation of both subnets: ``"none"`` (the paper),
    ``"gn"`` (GroupNorm, shared by the levels like the convolutions), ``"bn"`` (BatchNorm, one
    per level). ``box_loss``: smooth-L1 (``box_loss_beta``) on the deltas, or an IoU loss on the
    decoded boxes.
    """

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        num_classes: int,
        anchor_sizes: Sequence[Sequence[float]] | None = None,
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        num_convs: int = 4,
        norm: str = "none",
        prior_probability: float = 0.01,
        fg_iou_threshold: float = 0.5,
        bg_iou_threshold: float = 0.4,
        allow_low_quality: bool = True,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        box_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        box_loss: str = "smooth_l1",
        box_loss_beta: float = 0.1,
        box_loss_weight: float = 1.0,
        score_threshold: float = 0.05,
        pre_nms_topk: int = 1000,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            score_threshold=score_threshold, pre_nms_topk=pre_nms_topk, nms_threshold=nms_threshold,
            max_detections=max_detections,
        )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if box_loss not in RETINA_BOX_LOSSES:
            raise ValueError(
                f"RetinaNetHead: unknown box_loss {box_loss!r}; choose one of {', '.join(RETINA_BOX_LOSSES)}"
            )
        if not 0.0 < prior_probability < 1.0:
            raise ValueError(f"RetinaNetHead: prior_probability must be in (0, 1), got {prior_probability}")
        self.feature_info = sorted(feature_info, key=lambda info: info.stride)
        widths = {info.channels for info in self.feature_info}
        if len(widths) != 1:
            raise ValueError(
                f"RetinaNetHead: its subnets are shared by all levels, which must have one width; got "
                f"{[(info.name, info.channels) for info in self.feature_info]} (put an FPN neck before it)"
            )
        strides = [info.stride for info in self.feature_info]
        sizes = paper_anchor_sizes(strides) if anchor_sizes is None else [list(s) for s in anchor_sizes]
        if len(sizes) != len(strides) or len({len(s) for s in sizes}) != 1:
            raise ValueError(
                f"RetinaNetHead: anchor_sizes needs one list per level, all of one length (shared subnets); got "
                f"{len(sizes)} lists of lengths {[len(s) for s in sizes]} "
                f"for levels {[i.name for i in self.feature_info]}"
            )
        self.anchor_generators = nn.ModuleList(
            AnchorGenerator(level_sizes, aspect_ratios, stride=stride)
            for level_sizes, stride in zip(sizes, strides, strict=True)
        )
        self.num_anchors = self.anchor_generators[0].num_anchors_per_location
        self.num_classes = num_classes
        channels = widths.pop()
        self.cls_subnet = shared_conv_tower(channels, num_convs, norm)
        self.box_subnet = shared_conv_tower(channels, num_convs, norm)
        levels = len(self.feature_info)
        self.cls_level_norms = per_level_norms(channels, num_convs, levels) if norm == "bn" else None
        self.box_level_norms = per_level_norms(channels, num_convs, levels) if norm == "bn" else None
        self.cls_predictor = nn.Conv2d(channels, self.num_anchors * num_classes, 3, padding=1)
        self.box_predictor = nn.Conv2d(channels, self.num_anchors * 4, 3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)
        nn.init.constant_(self.cls_predictor.bias, -math.log((1 - prior_probability) / prior_probability))
        self.matcher = Matcher(fg_iou_threshold, bg_iou_threshold, allow_low_quality=allow_low_quality)
        self.coder = DeltaXYWHCoder(box_weights)
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.box_loss = box_loss
        self.box_loss_beta = box_loss_beta
        self.box_loss_weight = box_loss_weight

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        logits, deltas = [], []
        for level, info in enumerate(self.feature_info):
            x = features[info.name]
            n = x.shape[0]
            cls_features = run_shared_tower(self.cls_subnet, self.cls_level_norms, x, level)
            box_features = run_shared_tower(self.box_subnet, self.box_level_norms, x, level)
            # [N, A·k, H, W] → [N, H·W·A, k]: the anchors' (y, x, anchor) order.
            logits.append(self.cls_predictor(cls_features).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes))
            deltas.append(self.box_predictor(box_features).permute(0, 2, 3, 1).reshape(n, -1, 4))
        return torch.cat(logits, dim=1).float(), torch.cat(deltas, dim=1).float()

    def anchors(self, features: dict[str, Tensor]) -> Tensor:
        """All levels' anchors ``Tensor[P, 4] xyxy`` in input pixels, in the order of ``forward``."""
        return torch.cat(
            [
                generator(*features[info.name].shape[-2:])
                for info, generator in zip(self.feature_info, self.anchor_generators, strict=True)
            ]
        )

    def loss(self, features: dict[str, Tensor], image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        logits, deltas = self(features)
        anchors = self.anchors(features).to(deltas)
        gt_boxes, gt_valid = pad_boxes([t["boxes"].to(anchors) for t in targets])
        with stage("assign"):
            matched_index, match_labels = self.matcher(batched_box_iou(gt_boxes, anchors), gt_valid)
        positive = match_labels == 1
        counted = match_labels >= 0  # ignored anchors (IoU in [0.4, 0.5)) give no classification loss
        # The paper's normaliser: positives of the whole batch (at least 1, for images without objects).
        normalizer = positive.sum().clamp(min=1)
        class_targets = torch.zeros_like(logits)
        if gt_boxes.shape[1] == 0:
            loss_box = zero_loss(deltas)
        else:
            gt_labels = pad_values([t["labels"].to(anchors.device) for t in targets], 0)
            matched_labels = gt_labels.gather(1, matched_index)  # [N, P], 1..C where positive
            class_targets[positive] = F.one_hot(matched_labels[positive] - 1, self.num_classes).to(logits)
            matched_boxes = gt_boxes.gather(1, matched_index[..., None].expand(-1, -1, 4))[positive]
            positive_anchors = anchors.expand_as(deltas)[positive]
            if self.box_loss == "smooth_l1":
                target_deltas = self.coder.encode(positive_anchors, matched_boxes)
                loss_box = smooth_l1(deltas[positive], target_deltas, beta=self.box_loss_beta, normalizer=normalizer)
            else:
                decoded = self.coder.decode(deltas[positive], positive_anchors)
                loss_box = iou_loss(decoded, matched_boxes, kind=self.box_loss).sum() / normalizer
        loss_cls = focal_loss(
            logits[counted],
            class_targets[counted],
            alpha=self.focal_alpha,
            gamma=self.focal_gamma,
            normalizer=normalizer,
        )
        return {"loss_cls": loss_cls, "loss_box": self.box_loss_weight * loss_box}

    @torch.no_grad()
    def dense_predictions(self, features: dict[str, Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """What the postprocessing selects from: boxes ``Tensor[N, P, 4] xyxy`` in the input image's
        pixels (clipped to it) and per-class probabilities ``Tensor[N, P, C]``."""
        logits, deltas = self(features)
        boxes = self.coder.decode(deltas, self.anchors(features).to(deltas))
        return clip_boxes_per_image(boxes, image_sizes), logits.sigmoid()
