"""Cross Stage Partial block (Wang et al., 2019; Scaled-YOLOv4's CSP neck): the input splits into
two 1×1 branches; only one goes through the stack of convolutions, then both are concatenated and
mixed by a 1×1 transition. Half the channels skip the expensive stack, which saves computation
and gives the gradient a short path.

``[N, in_channels, H, W] → [N, channels, H, W]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from detkit.layers.conv_bn_act import ConvBNLeaky


class CSPBlock(nn.Module):
    """``body``: the module the processed branch runs through (``channels`` in and out)."""

    def __init__(self, in_channels: int, channels: int, body: nn.Module) -> None:
        super().__init__()
        self.split_main = ConvBNLeaky(in_channels, channels, 1)
        self.split_skip = ConvBNLeaky(in_channels, channels, 1)
        self.body = body
        self.transition = ConvBNLeaky(2 * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.transition(torch.cat((self.body(self.split_main(x)), self.split_skip(x)), dim=1))
