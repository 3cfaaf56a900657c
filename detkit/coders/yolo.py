"""Box parameterisations of the YOLO heads. Both work on *activated* predictions (after the
head's sigmoid), so ``decode(encode(boxes)) == boxes`` exactly.

YOLOv1 (one grid of S_y × S_x cells over a canvas of W × H pixels, cell size w_c × h_c):

    x = cx / w_c − col     y = cy / h_c − row     (centre offset inside the cell, in [0, 1])
    √w = sqrt(w / W)       √h = sqrt(h / H)       (square roots of the size over the canvas)

YOLOv3 (cell (col, row) on a level of stride s, anchor of size (a_w, a_h) pixels):

    σx = cx / s − col      σy = cy / s − row      (the sigmoid of the raw tx, ty; in [0, 1])
    tw = log(w / a_w)      th = log(h / a_h)      (raw outputs, log-space relative to the anchor)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from detkit.ops.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

# exp() of a larger tw/th gives a box 1000× its anchor: clamp before decoding (as delta_xywh does).
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class YOLOv1Coder:
    """``cells: Tensor[..., 2]`` (col, row); ``cell_size, canvas_size: Tensor[2]`` (w, h) pixels."""

    def encode(self, boxes: Tensor, cells: Tensor, cell_size: Tensor, canvas_size: Tensor) -> Tensor:
        """``boxes: Tensor[..., 4] xyxy`` → ``codes: Tensor[..., 4]`` (x, y, √w, √h)."""
        centre_size = xyxy_to_cxcywh(boxes.float())
        offsets = centre_size[..., :2] / cell_size - cells
        roots = (centre_size[..., 2:] / canvas_size).clamp(min=0).sqrt()
        return torch.cat((offsets, roots), dim=-1)

    def decode(self, codes: Tensor, cells: Tensor, cell_size: Tensor, canvas_size: Tensor) -> Tensor:
        """``codes: Tensor[..., 4]`` (x, y, √w, √h) → ``boxes: Tensor[..., 4] xyxy`` pixels."""
        codes = codes.float()
        centres = (codes[..., :2] + cells) * cell_size
        sizes = codes[..., 2:].square() * canvas_size
        return cxcywh_to_xyxy(torch.cat((centres, sizes), dim=-1))


class YOLOv3Coder:
    """``cells: Tensor[..., 2]`` (col, row), ``strides: Tensor[...]`` pixels, ``anchors:
    Tensor[..., 2]`` (w, h) pixels — broadcastable against the boxes (e.g. a ``GridPriors``)."""

    def __init__(self, scale_clamp: float = DEFAULT_SCALE_CLAMP) -> None:
        self.scale_clamp = scale_clamp

    def encode(self, boxes: Tensor, cells: Tensor, strides: Tensor, anchors: Tensor) -> Tensor:
        """``boxes: Tensor[..., 4] xyxy`` → ``Tensor[..., 4]`` (σx, σy, tw, th)."""
        centre_size = xyxy_to_cxcywh(boxes.float())
        offsets = centre_size[..., :2] / strides[..., None] - cells
        log_sizes = torch.log(centre_size[..., 2:].clamp(min=1e-6) / anchors)
        return torch.cat((offsets, log_sizes), dim=-1)

    def decode(self, codes: Tensor, cells: Tensor, strides: Tensor, anchors: Tensor) -> Tensor:
        """``codes: Tensor[..., 4]`` (σx, σy, tw, th) → ``boxes: Tensor[..., 4] xyxy`` pixels.
        Computed in float32 even under autocast."""
        codes = codes.float()
        centres = (codes[..., :2] + cells) * strides[..., None]
        sizes = torch.exp(codes[..., 2:].clamp(max=self.scale_clamp)) * anchors
        return cxcywh_to_xyxy(torch.cat((centres, sizes), dim=-1))
