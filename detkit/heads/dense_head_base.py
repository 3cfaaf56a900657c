"""What every single-stage head's test time has in common (SSD, RetinaNet, YOLOv1, YOLOv2, YOLOv3 /
YOLOv4): ``predict`` is ``detkit.ops.nms.postprocess_dense`` (score threshold → top-k → class-aware
NMS → cap) over the head's ``dense_predictions``, with the head's four selection settings.

A head says only how it turns its maps into boxes and per-class scores (``dense_predictions``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from detkit.ops.nms import postprocess_dense
from detkit.structures import Detections


class DenseHeadBase(nn.Module):
    """Test time: per image the ``pre_nms_topk`` best (position, class) pairs above
    ``score_threshold`` go to class-wise NMS at ``nms_threshold``, ``max_detections`` are kept."""

    def __init__(self, *, score_threshold: float, pre_nms_topk: int, nms_threshold: float, max_detections: int) -> None:
        super().__init__()
        self.score_threshold = score_threshold
        self.pre_nms_topk = pre_nms_topk
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections

    def dense_predictions(self, features: dict[str, Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """Boxes ``Tensor[N, A, 4] xyxy`` (clipped to each image) and per-class scores ``Tensor[N, A, C]``."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, features: dict[str, Tensor], image_sizes: Tensor) -> list[Detections]:
        """Detections per image, boxes ``xyxy`` in the input image's pixels (clipped to it)."""
        return postprocess_dense(
            *self.dense_predictions(features, image_sizes),
            score_threshold=self.score_threshold,
            pre_nms_topk=self.pre_nms_topk,
            iou_threshold=self.nms_threshold,
            max_detections=self.max_detections,
        )
