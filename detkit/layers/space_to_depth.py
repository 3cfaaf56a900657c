"""Space-to-depth (YOLOv2's "reorg"): every s × s block of pixels becomes s² channels of one pixel.

``[N, C, H, W] → [N, s²·C, H/s, W/s]``: output channel ``c·s² + dy·s + dx`` at (y, x) holds input
channel ``c`` at (y·s + dy, x·s + dx) — ``torch.nn.functional.pixel_unshuffle``'s order, which
exports to ONNX. Unlike pooling nothing is lost, so the passthrough layer hands the stride-32 map the
stride-16 map's fine detail at the coarse resolution. Darknet's own reorg permutes the same values
into another channel order; the order does not matter to the convolution that follows.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def space_to_depth(x: Tensor, block_size: int = 2) -> Tensor:
    """``x: Tensor[N, C, H, W]`` → ``Tensor[N, block²·C, ⌈H/block⌉, ⌈W/block⌉]``; a map whose sides
    are not multiples of ``block_size`` is zero-padded at the bottom and right first (the same
    ceiling as a stride-2 convolution, so the result lines up with the next, coarser map)."""
    if block_size < 1:
        raise ValueError(f"space_to_depth: block_size must be >= 1, got {block_size}")
    if x.dim() != 4:
        raise ValueError(f"space_to_depth expects Tensor[N, C, H, W], got shape {tuple(x.shape)}")
    pad_h = (-x.shape[-2]) % block_size
    pad_w = (-x.shape[-1]) % block_size
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return F.pixel_unshuffle(x, block_size)


class SpaceToDepth(nn.Module):
    """Module form of :func:`space_to_depth`."""

    def __init__(self, block_size: int = 2) -> None:
        super().__init__()
        self.block_size = block_size

    def forward(self, x: Tensor) -> Tensor:
        return space_to_depth(x, self.block_size)
