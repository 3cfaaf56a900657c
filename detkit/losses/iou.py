"""IoU-family box losses (IoU, GIoU, DIoU, CIoU) on decoded boxes, wrapping ``torchvision.ops``.

They compare boxes directly instead of their encodings, so the loss does not depend on the box
scale or on how the head parameterises it (the YOLOv3 option beside the coder-space MSE).
"""

from __future__ import annotations

from torch import Tensor
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from detkit.ops.iou import elementwise_box_iou

IOU_LOSS_KINDS = ("iou", "giou", "diou", "ciou")


def iou_loss(prediction: Tensor, target: Tensor, *, kind: str = "giou", eps: float = 1e-7) -> Tensor:
    """Per-box loss ``1 − IoU`` (plus the GIoU/DIoU/CIoU penalty) of matching pairs.

    ``prediction, target: Tensor[M, 4] xyxy`` → ``Tensor[M]`` float32 (M = 0 gives an empty
    tensor). Both are cast to float32 so that half-precision training does not lose the small
    penalty terms.
    """
    prediction = prediction.float()
    target = target.float()
    if kind == "iou":
        return 1.0 - elementwise_box_iou(prediction, target)
    if kind == "giou":
        return generalized_box_iou_loss(prediction, target, reduction="none", eps=eps)
    if kind == "diou":
        return distance_box_iou_loss(prediction, target, reduction="none", eps=eps)
    if kind == "ciou":
        return complete_box_iou_loss(prediction, target, reduction="none", eps=eps)
    raise ValueError(f"unknown IoU loss {kind!r}; choose one of {', '.join(IOU_LOSS_KINDS)}")
