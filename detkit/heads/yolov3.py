"""YOLOv3 head (Redmon & Farhadi, 2018): A anchors per cell on L levels (3 × 3 = 9 anchors on
strides 8, 16, 32 by default), each predicting a box, an objectness and C independent class scores.

Shapes: N images, L levels of H_l × W_l cells, A anchors per level, P = Σ_l H_l·W_l·A priors (in
``detkit.priors.grid`` order), C classes, G ground-truth boxes per image (padded).

Per level: a 3×3 conv (doubling the width) and a 1×1 predictor of A·(4 + 1 + C) numbers:
tx, ty, tw, th (``detkit.coders.yolo.YOLOv3Coder``: sigmoid offsets in the cell, log-size relative
to the anchor), the objectness logit and C class logits (sigmoids, not a softmax, so classes need
not exclude each other).

Assignment (``detkit.assign.yolo.assign_yolov3``): every object has one positive prior, the best
shape fit among all L·A anchors, at its centre's cell (plus, with ``extra_positive_threshold``, the
other anchors that fit it better than that); priors whose prediction overlaps an object by more
than ``ignore_threshold`` are otherwise ignored. Losses, summed and divided by N:
  loss_box   = box_weight Σ_pos (2 − wh/canvas area) · box loss, where the box loss is
               ``mse`` on the coder's outputs (darknet) or ``iou``/``giou``/``diou``/``ciou`` on the
               decoded boxes (``detkit.losses.iou``); the factor favours small objects
  loss_obj   = obj_weight Σ_pos BCE(objectness, 1)
  loss_noobj = noobj_weight Σ_(not positive, not ignored) BCE(objectness, 0)
  loss_cls   = cls_weight Σ_pos Σ_c BCE(class c, 1[c = class])
Prediction: score = σ(objectness)·σ(class), boxes decoded and clipped, then ``postprocess_dense``.

YOLOv4's "eliminate grid sensitivity" (``scale_xy`` s > 1): the cell offset is s·σ(t) − (s − 1)/2
instead of σ(t), so a centre on a cell border (offset 0 or 1) is reached at a finite logit. The
same head with ``scale_xy``, a CIoU box loss and ``extra_positive_threshold`` is YOLOv4's head.
``head_channels`` sets the width of each level's 3×3 convolution (default twice its input).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.assign.yolo import assign_yolov3
from detkit.coders.yolo import YOLOv3Coder
from detkit.heads.dense_head_base import DenseHeadBase
from detkit.layers.conv_bn_act import ConvBNLeaky
from detkit.losses import binary_cross_entropy
from detkit.losses.iou import IOU_LOSS_KINDS, iou_loss
from detkit.ops.boxes import clip_boxes_per_image, pad_boxes, pad_values
from detkit.priors.coverage import BlankBatch, Priors
from detkit.priors.grid import AnchorGrid
from detkit.structures import FeatureInfo, Target
from detkit.utils.stages import stage

# darknet's yolov3.cfg anchors (k-means on COCO at 416×416), (w, h) pixels, per stride 8, 16, 32.
COCO_ANCHORS = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)
YOLOV3_BOX_LOSSES = ("mse", *IOU_LOSS_KINDS)


class YOLOv3Head(DenseHeadBase):
    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        num_classes: int,
        anchors: Sequence[Sequence[Sequence[float]]] = COCO_ANCHORS,
        box_loss: str = "mse",
        scale_xy: float = 1.0,
        head_channels: Sequence[int] | None = None,
        ignore_threshold: float = 0.5,
        extra_positive_threshold: float | None = None,
        box_weight: float = 1.0,
        obj_weight: float = 1.0,
        noobj_weight: float = 1.0,
        cls_weight: float = 1.0,
        object_prior: float = 0.01,
        score_threshold: float = 0.01,
        pre_nms_topk: int = 1000,
        nms_threshold: float = 0.45,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            score_threshold=score_threshold, pre_nms_topk=pre_nms_topk, nms_threshold=nms_threshold,
            max_detections=max_detections,
        )
        if box_loss not in YOLOV3_BOX_LOSSES:
            raise ValueError(f"YOLOv3Head: unknown box_loss {box_loss!r}; choose one of {', '.join(YOLOV3_BOX_LOSSES)}")
        if scale_xy < 1.0:
            raise ValueError(f"YOLOv3Head: scale_xy must be >= 1 (1 = plain sigmoid offsets), got {scale_xy}")
        levels = sorted(feature_info, key=lambda info: info.stride)
        widths = [2 * info.channels for info in levels] if head_channels is None else list(head_channels)
        if len(widths) != len(levels):
            raise ValueError(f"YOLOv3Head: {len(widths)} head_channels for {len(levels)} input levels")
        self.anchor_grid = AnchorGrid(anchors, [info.stride for info in levels])
        self.in_features = [info.name for info in levels]
        self.num_classes = num_classes
        num_anchors = self.anchor_grid.num_anchors_per_level
        self.convs = nn.ModuleList(ConvBNLeaky(info.channels, w, 3) for info, w in zip(levels, widths, strict=True))
        self.predictors = nn.ModuleList(nn.Conv2d(w, num_anchors * (5 + num_classes), 1) for w in widths)
        for predictor in self.predictors:
            nn.init.normal_(predictor.weight, std=0.01)
            bias = predictor.bias.detach().view(num_anchors, 5 + num_classes)
            bias.zero_()
            # Start with objectness ≈ object_prior so the many negatives do not swamp the first steps.
            bias[:, 4] = math.log(object_prior / (1 - object_prior))
        self.coder = YOLOv3Coder()
        self.box_loss = box_loss
        self.scale_xy = float(scale_xy)
        self.ignore_threshold = ignore_threshold
        self.extra_positive_threshold = extra_positive_threshold
        self.weights = {"box": box_weight, "obj": obj_weight, "noobj": noobj_weight, "cls": cls_weight}

    def coverage_priors(self, detector: nn.Module, blank_batch: BlankBatch) -> Priors:
        """The anchor shapes, compared with each box centred, as the assignment picks an anchor."""
        threshold = self.ignore_threshold if self.extra_positive_threshold is None else self.extra_positive_threshold
        shapes = self.anchor_grid.anchors.detach().float().cpu().reshape(-1, 2)
        rule = "shape IoU of the best anchor (w, h centred on the box)"
        return Priors("yolov3", float(threshold), rule, shapes=shapes)

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, list[tuple[int, int]]]:
        """→ raw outputs ``Tensor[N, P, 5 + C]`` float32 (tx, ty, tw, th, objectness, classes;
        un-activated) and the (H_l, W_l) of each level."""
        outputs, sizes = [], []
        for name, conv, predictor in zip(self.in_features, self.convs, self.predictors, strict=True):
            out = predictor(conv(features[name]))
            num_images, _, height, width = out.shape
            # [N, A·(5+C), H, W] → [N, H, W, A, 5+C] → [N, H·W·A, 5+C]: the priors' (y, x, anchor) order.
            out = out.view(num_images, -1, 5 + self.num_classes, height, width).permute(0, 3, 4, 1, 2)
            outputs.append(out.reshape(num_images, -1, 5 + self.num_classes))
            sizes.append((height, width))
        return torch.cat(outputs, dim=1).float(), sizes

    def _decode(self, raw: Tensor, sizes: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """→ activated codes ``Tensor[N, P, 4]`` (σx, σy, tw, th) and boxes ``Tensor[N, P, 4] xyxy``."""
        priors = self.anchor_grid(sizes)
        offsets = raw[..., :2].sigmoid()
        if self.scale_xy != 1.0:
            offsets = self.scale_xy * offsets - (self.scale_xy - 1.0) / 2
        codes = torch.cat((offsets, raw[..., 2:4]), dim=-1)
        return codes, self.coder.decode(codes, priors.cells, priors.strides, priors.anchors)

    def loss(self, features: dict[str, Tensor], image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        raw, sizes = self(features)
        num_images = raw.shape[0]
        codes, boxes = self._decode(raw, sizes)
        gt_boxes, gt_valid = pad_boxes([t["boxes"].to(raw) for t in targets])
        gt_labels = pad_values([t["labels"].to(raw.device) for t in targets])
        with stage("assign"):
            assignment = assign_yolov3(
                gt_boxes,
                gt_valid,
                boxes.detach(),
                anchors=self.anchor_grid.anchors,
                strides=self.anchor_grid.strides,
                feature_sizes=sizes,
                ignore_threshold=self.ignore_threshold,
                extra_positive_threshold=self.extra_positive_threshold,
            )
        positive = assignment.gt_index >= 0
        image_index, prior_index = positive.nonzero(as_tuple=True)
        gt_index = assignment.gt_index[positive]
        matched = gt_boxes[image_index, gt_index]  # [M, 4]
        objectness = raw[..., 4]

        # darknet's (2 − w·h) with w, h relative to the canvas: small boxes weigh up to twice as much.
        canvas_area = float(sizes[0][0] * sizes[0][1]) * float(self.anchor_grid.strides[0]) ** 2
        scale = 2.0 - (matched[:, 2] - matched[:, 0]) * (matched[:, 3] - matched[:, 1]) / canvas_area
        if self.box_loss == "mse":
            priors = self.anchor_grid(sizes)
            target_codes = self.coder.encode(
                matched, priors.cells[prior_index], priors.strides[prior_index], priors.anchors[prior_index]
            )
            per_box = (codes[positive] - target_codes).square().sum(dim=-1)
        else:
            per_box = iou_loss(boxes[positive], matched, kind=self.box_loss)
        loss_box = (scale * per_box).sum()

        loss_obj = binary_cross_entropy(objectness[positive], torch.ones_like(objectness[positive]))
        negative = ~positive & ~assignment.ignore
        loss_noobj = binary_cross_entropy(objectness[negative], torch.zeros_like(objectness[negative]))
        loss_cls = self._class_loss(raw[..., 5:][positive], gt_labels[image_index, gt_index])
        return {
            "loss_box": self.weights["box"] * loss_box / num_images,
            "loss_obj": self.weights["obj"] * loss_obj / num_images,
            "loss_noobj": self.weights["noobj"] * loss_noobj / num_images,
            "loss_cls": self.weights["cls"] * loss_cls / num_images,
        }

    def _class_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``logits: Tensor[M, C]`` of the positives, ``labels: Tensor[M]`` in 1..C → summed BCE."""
        return binary_cross_entropy(logits, F.one_hot(labels - 1, self.num_classes).to(logits))

    def _class_probabilities(self, logits: Tensor) -> Tensor:
        """``logits: Tensor[N, P, C]`` → independent class probabilities (sigmoids)."""
        return logits.sigmoid()

    @torch.no_grad()
    def dense_predictions(self, features: dict[str, Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """Boxes ``Tensor[N, P, 4] xyxy`` (clipped to each image) and scores ``Tensor[N, P, C]``
        (objectness × class): what the postprocessing selects from."""
        raw, sizes = self(features)
        _, boxes = self._decode(raw, sizes)
        scores = raw[..., 4:5].sigmoid() * self._class_probabilities(raw[..., 5:])
        return clip_boxes_per_image(boxes, image_sizes), scores
