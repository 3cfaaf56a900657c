"""YOLOv2 head (Redmon & Farhadi, 2016, "YOLO9000"): one stride-32 grid, A anchors per cell (5
fitted by k-means with the 1 − IoU distance), each anchor with its own box, objectness and class
scores (YOLOv1 had one set of class scores per cell).

Shapes: N images, one level of H × W cells, A anchors, P = H·W·A priors, C classes.

A batch-normalised 3×3 convolution (``head_channels`` wide; darknet's 1024) and a 1×1 predictor of
A·(5 + C) numbers per cell. Direct location prediction, the same maths as YOLOv3
(``detkit.coders.yolo.YOLOv3Coder``): the centre is σ(tx), σ(ty) inside its cell, so it cannot
drift to another cell as the unbounded offsets of an RPN can, and the size is the anchor's times
exp(tw), exp(th).

YOLOv2 is therefore ``YOLOv3Head`` on one level, except for the classes: a softmax over the C
classes per anchor (the paper's), scored with cross-entropy, and ``score = σ(objectness) ·
softmax(class)``; ``class_activation="sigmoid"`` gives YOLOv3's independent sigmoids instead.
Assignment (best of the A anchors by shape at the centre's cell, ignore above
``ignore_threshold``, 0.6 in darknet's yolo-voc.cfg) and the box/objectness losses are YOLOv3's.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from detkit.heads.yolov3 import YOLOv3Head
from detkit.losses import cross_entropy
from detkit.structures import FeatureInfo

# darknet's yolo-voc.cfg anchors (k-means on VOC), converted from 13×13-cell units to pixels at 416.
VOC_ANCHORS = ((42.3, 55.4), (102.2, 128.3), (161.8, 259.2), (303.1, 154.9), (359.6, 320.2))
CLASS_ACTIVATIONS = ("softmax", "sigmoid")


class YOLOv2Head(YOLOv3Head):
    """``feature_info`` must hold exactly one map (the passthrough neck's); ``anchors`` are A (w, h)
    pairs in input pixels. Other keywords are ``YOLOv3Head``'s."""

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        num_classes: int,
        anchors: Sequence[Sequence[float]] = VOC_ANCHORS,
        head_channels: int = 1024,
        class_activation: str = "softmax",
        ignore_threshold: float = 0.6,
        **kwargs,
    ) -> None:
        if len(feature_info) != 1:
            names = [info.name for info in feature_info]
            raise ValueError(
                f"YOLOv2Head predicts on one map, got {len(feature_info)} ({names}); use the passthrough neck"
            )
        if class_activation not in CLASS_ACTIVATIONS:
            raise ValueError(
                f"YOLOv2Head: unknown class_activation {class_activation!r}; "
                f"choose one of {', '.join(CLASS_ACTIVATIONS)}"
            )
        flat = [list(pair) for pair in anchors]
        if not flat or any(len(pair) != 2 for pair in flat):
            raise ValueError(f"YOLOv2Head: anchors must be a list of (w, h) pairs, got {anchors}")
        super().__init__(
            feature_info=feature_info,
            num_classes=num_classes,
            anchors=[flat],
            head_channels=[head_channels],
            ignore_threshold=ignore_threshold,
            **kwargs,
        )
        self.class_activation = class_activation

    def _class_loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.class_activation == "sigmoid":
            return super()._class_loss(logits, labels)
        return cross_entropy(logits, labels - 1)

    def _class_probabilities(self, logits: Tensor) -> Tensor:
        if self.class_activation == "sigmoid":
            return super()._class_probabilities(logits)
        return logits.float().softmax(dim=-1)
