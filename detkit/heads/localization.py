"""Single-object classification + localisation head: one class and one box per image.

The task before detection (the course's "classification + localisation", ILSVRC's CLS-LOC): the
image holds one object; the network says which class it is (E_cls, cross-entropy) and where it is
(E_loc, smooth-L1 between the predicted and the true box, both normalised by the image size). It
is a dense head with a single "position", the whole image, so ``SingleStageDetector`` runs it.

Shapes: N images, C object classes (+1 background: an image without an object is trained as
class 0 with no box loss, as every detkit detector trains on empty images), D pooled size.

Network: one backbone map (``in_feature``, the deepest by default) → 1×1 conv to ``reduce_channels``
(+BN, ReLU) → adaptive average pooling to ``pool_size × pool_size`` (keeps where things are; a
global pool would throw the position away) → flatten → fully connected ``hidden_dim`` (ReLU,
dropout) → two outputs: ``C+1`` class logits and 4 box numbers ``(cx/W, cy/H, w/W, h/H)`` through a
sigmoid, relative to each image's unpadded size.

Losses: ``loss_cls`` = mean cross-entropy over the N images; ``loss_box`` = ``box_weight`` × the
smooth-L1 (transition ``box_loss_beta``, in normalised units) summed over the four numbers and
averaged over the images that hold an object. An image with several objects is trained on its
largest one (the single-object data never has several).

Prediction: per image one detection: the most probable object class (background excluded), its
probability as the score and the decoded box, clipped to the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.layers.conv_bn_act import conv_bn_act
from detkit.losses.box import smooth_l1, zero_loss
from detkit.ops.boxes import box_area, clip_boxes_per_image, cxcywh_to_xyxy, xyxy_to_cxcywh
from detkit.ops.pool import adaptive_avg_pool2d
from detkit.structures import Detections, FeatureInfo, Target


class LocalizationHead(nn.Module):
    """One (C+1)-way classification and one normalised box per image, from one backbone map."""

    # Tells evaluation to add the single-object metrics (detkit.evaluation.localization).
    single_object = True

    def __init__(
        self,
        *,
        feature_info: list[FeatureInfo],
        num_classes: int,
        in_feature: str | None = None,
        reduce_channels: int = 128,
        pool_size: int = 5,
        hidden_dim: int = 512,
        dropout: float = 0.0,
        box_weight: float = 5.0,
        box_loss_beta: float = 0.02,
    ) -> None:
        super().__init__()
        infos = {info.name: info for info in feature_info}
        self.in_feature = in_feature if in_feature is not None else feature_info[-1].name
        if self.in_feature not in infos:
            raise ValueError(f"in_feature {self.in_feature!r} is not a backbone output; it has {sorted(infos)}")
        if pool_size < 1 or reduce_channels < 1 or hidden_dim < 1:
            raise ValueError("pool_size, reduce_channels and hidden_dim must be positive")
        self.num_classes = num_classes
        self.reduce = nn.Sequential(*conv_bn_act(infos[self.in_feature].channels, reduce_channels, 1))
        self.pool_size = pool_size
        self.hidden = nn.Sequential(
            nn.Linear(reduce_channels * pool_size * pool_size, hidden_dim), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.cls_score = nn.Linear(hidden_dim, num_classes + 1)
        self.box_pred = nn.Linear(hidden_dim, 4)
        self.box_weight = float(box_weight)
        self.box_loss_beta = float(box_loss_beta)
        # What dense postprocessing (export) needs to reproduce ``predict``: the best of the C
        # (box, class) pairs, no threshold, NMS a no-op, one detection.
        self.score_threshold = 0.0
        self.pre_nms_topk = 1
        self.nms_threshold = 1.0
        self.max_detections = 1

    def forward(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """→ ``class_logits: Tensor[N, C+1]`` and ``boxes: Tensor[N, 4]`` normalised cxcywh in (0, 1)."""
        # detkit's adaptive pooling: the same numbers, and an ONNX form for any map size.
        x = adaptive_avg_pool2d(self.reduce(features[self.in_feature]), (self.pool_size, self.pool_size)).flatten(1)
        hidden = self.hidden(x)
        return self.cls_score(hidden), self.box_pred(hidden).sigmoid()

    def loss(self, features: dict[str, Tensor], image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        class_logits, boxes = self(features)
        labels, box_targets, has_object = single_object_targets(targets, image_sizes)
        loss_cls = F.cross_entropy(class_logits.float(), labels)
        count = int(has_object.sum())
        if count == 0:
            loss_box = zero_loss(boxes)
        else:
            loss_box = self.box_weight * smooth_l1(
                boxes[has_object], box_targets[has_object], beta=self.box_loss_beta, normalizer=count
            )
        return {"loss_cls": loss_cls, "loss_box": loss_box}

    @torch.no_grad()
    def predict(self, features: dict[str, Tensor], image_sizes: Tensor) -> list[Detections]:
        boxes, scores = self.dense_predictions(features, image_sizes)
        best_scores, best_classes = scores[:, 0].max(dim=1)
        return [
            {"boxes": boxes[i], "scores": best_scores[i : i + 1], "labels": best_classes[i : i + 1] + 1}
            for i in range(boxes.shape[0])
        ]

    def dense_predictions(self, features: dict[str, Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """``boxes: Tensor[N, 1, 4] xyxy`` (input pixels, clipped) and ``scores: Tensor[N, 1, C]``
        (softmax probabilities of the object classes)."""
        class_logits, normalised = self(features)
        scale = image_sizes.flip(1).to(normalised).repeat(1, 2)  # (W, H, W, H)
        boxes = clip_boxes_per_image(cxcywh_to_xyxy(normalised.float() * scale)[:, None], image_sizes)
        scores = class_logits.float().softmax(dim=1)[:, 1:]
        return boxes, scores[:, None]


def single_object_targets(targets: list[Target], image_sizes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per image: ``labels: Tensor[N]`` (the largest object's class, 0 without objects),
    ``boxes: Tensor[N, 4]`` normalised cxcywh (zeros without objects) and ``has_object: Tensor[N]``.
    ``image_sizes: Tensor[N, 2]`` (height, width) normalise the boxes."""
    device = image_sizes.device
    labels = torch.zeros(len(targets), dtype=torch.long, device=device)
    boxes = torch.zeros(len(targets), 4, device=device)
    for i, target in enumerate(targets):
        if target["boxes"].shape[0] == 0:
            continue
        gt = target["boxes"].to(device).float()
        largest = int(box_area(gt).argmax())
        height, width = image_sizes[i].tolist()
        labels[i] = target["labels"][largest]
        boxes[i] = xyxy_to_cxcywh(gt[largest : largest + 1])[0] / torch.tensor(
            [width, height, width, height], device=device, dtype=torch.float32
        )
    return labels, boxes, labels > 0
