"""Box utilities: area, clipping, format conversion, padding. Every box here is ``xyxy`` float in
absolute pixels unless the name says otherwise; IoU in every form is in ``detkit.ops.iou``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


def box_area(boxes: Tensor) -> Tensor:
    """``boxes: Tensor[..., 4] xyxy`` → ``Tensor[...]`` areas (0 for degenerate boxes)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def clip_boxes(boxes: Tensor, height: int | float, width: int | float) -> Tensor:
    """Clip ``boxes: Tensor[..., 4] xyxy`` to the image ``[0, width] × [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def clip_boxes_per_image(boxes: Tensor, image_sizes: Tensor) -> Tensor:
    """Clip ``boxes: Tensor[N, A, 4] xyxy`` (or ``[N, A, C, 4]``) to each image's
    ``image_sizes: Tensor[N, 2]`` (height, width)."""
    shape = (-1,) + (1,) * (boxes.dim() - 2)
    heights = image_sizes[:, 0].to(boxes.dtype).view(shape)
    widths = image_sizes[:, 1].to(boxes.dtype).view(shape)
    x1 = torch.minimum(boxes[..., 0].clamp(min=0), widths)
    y1 = torch.minimum(boxes[..., 1].clamp(min=0), heights)
    x2 = torch.minimum(boxes[..., 2].clamp(min=0), widths)
    y2 = torch.minimum(boxes[..., 3].clamp(min=0), heights)
    return torch.stack((x1, y1, x2, y2), dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4] xyxy`` → ``Tensor[..., 4] cxcywh`` (same units)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack(((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), dim=-1)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``Tensor[..., 4] cxcywh`` → ``Tensor[..., 4] xyxy`` (same units)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), dim=-1)


def pad_boxes(boxes_per_image: list[Tensor], fill: float = 0.0) -> tuple[Tensor, Tensor]:
    """Stack a ragged list of ``Tensor[G_i, 4]`` into ``Tensor[N, G_max, 4]`` plus a validity
    mask ``Tensor[N, G_max]`` bool. Padding boxes are all ``fill`` (degenerate, so IoU 0)."""
    padded = pad_sequence(boxes_per_image, batch_first=True, padding_value=fill)
    lengths = torch.tensor([b.shape[0] for b in boxes_per_image], device=padded.device)
    valid = torch.arange(padded.shape[1], device=padded.device)[None, :] < lengths[:, None]
    return padded, valid


def pad_values(values_per_image: list[Tensor], fill: int | float = 0) -> Tensor:
    """Stack a ragged list of ``Tensor[G_i]`` into ``Tensor[N, G_max]`` padded with ``fill``."""
    return pad_sequence(values_per_image, batch_first=True, padding_value=fill)
