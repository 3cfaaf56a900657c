"""YOLOv4's SPP block (after He et al.'s spatial pyramid pooling, kept at full resolution): max
pools of several sizes at stride 1, concatenated with their input.

``[N, C, H, W] → [N, (1 + len(kernel_sizes))·C, H, W]``. Each pool sees a wider window of the
deepest map (5, 9, 13 cells by default, darknet's), which enlarges the receptive field at
almost no cost and separates context from the object itself. Not the SPP-net layer, which pools
each window into fixed bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class SPPBlock(nn.Module):
    def __init__(self, kernel_sizes: Sequence[int] = (5, 9, 13)) -> None:
        super().__init__()
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"SPPBlock: pool sizes must be odd (to keep the map size), got {list(kernel_sizes)}")
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in self.kernel_sizes)

    def expansion(self) -> int:
        """How many times the input's channels the output has."""
        return 1 + len(self.kernel_sizes)

    def forward(self, x: Tensor) -> Tensor:
        # darknet's route order: the largest pool first, the input last.
        return torch.cat([pool(x) for pool in reversed(self.pools)] + [x], dim=1)
