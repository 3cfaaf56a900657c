"""YOLOv4's neck: SPP on the deepest map, then PANet's two paths (Liu et al., 2018) over c3/c4/c5.

- Deepest level: three convolutions (1×1, 3×3, 1×1), the SPP block (``detkit.layers.spp_block``),
  three more; with ``spp=False`` one plain conv set instead.
- Top-down (as YOLOv3's neck): the deeper result, 1×1-reduced and upsampled ×2, is concatenated
  with the 1×1-reduced backbone map and goes through a conv set.
- Bottom-up (PANet's addition): the shallower output, downsampled by a stride-2 3×3 convolution, is
  concatenated with the top-down map of the next level and goes through another conv set, so the
  deep levels get the shallow levels' localisation detail over a short path.

A conv set is YOLOv3's alternating 1×1 / 3×3 stack (``num_convs`` layers, darknet: 5); with
``csp=True`` each becomes a CSP block (``detkit.layers.csp``, Scaled-YOLOv4's CSP-PAN) whose processed
half runs ``num_convs // 2`` pairs of 3×3 and 1×1 convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.layers.conv_bn_act import ConvBNLeaky
from detkit.layers.csp import CSPBlock
from detkit.layers.spp_block import SPPBlock
from detkit.necks.levels import input_levels, pyramid_level
from detkit.necks.yolov3_fpn import conv_set
from detkit.structures import FeatureInfo


def neck_block(in_channels: int, channels: int, num_convs: int, csp: bool) -> nn.Module:
    """A conv set (``csp`` False) or a CSP block of the same depth: ``in_channels → channels``."""
    if not csp:
        return conv_set(in_channels, channels, num_convs)
    body = []
    for _ in range(max(1, num_convs // 2)):
        body += [ConvBNLeaky(channels, channels, 3), ConvBNLeaky(channels, channels, 1)]
    return CSPBlock(in_channels, channels, nn.Sequential(*body))


def _match(x: Tensor, like: Tensor) -> Tensor:
    # Odd map sizes leave the resampled map one cell off: align it with the map it joins.
    return x if x.shape[-2:] == like.shape[-2:] else F.interpolate(x, size=like.shape[-2:], mode="nearest")


class PANNeck(nn.Module):
    """``forward(features) -> {"p3": [N, channels[0], H/8, W/8], "p4": ..., "p5": ...}``.

    ``feature_info``: the backbone's outputs; ``in_features`` picks them (default all, shallow →
    deep); ``channels``: each output's width, shallow → deep (darknet: 128, 256, 512);
    ``spp_kernel_sizes``: the SPP block's pools.
    """

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        in_features: Sequence[str] | None = None,
        channels: Sequence[int] = (128, 256, 512),
        num_convs: int = 5,
        spp: bool = True,
        spp_kernel_sizes: Sequence[int] = (5, 9, 13),
        csp: bool = False,
    ) -> None:
        super().__init__()
        names, inputs = input_levels(feature_info, in_features, "PANNeck")
        widths = list(channels)
        if len(widths) != len(inputs) or len(inputs) < 2:
            raise ValueError(
                f"PANNeck: needs >= 2 levels and one width per level, got {len(widths)} widths for {names}"
            )
        self.in_features = [info.name for info in inputs]
        deep_in, deep_width = inputs[-1].channels, widths[-1]
        if spp:
            pool = SPPBlock(spp_kernel_sizes)
            self.deepest = nn.Sequential(
                conv_set(deep_in, deep_width, 3), pool, conv_set(pool.expansion() * deep_width, deep_width, 3)
            )
        else:
            self.deepest = neck_block(deep_in, deep_width, num_convs, csp)
        levels = range(len(inputs) - 1)
        # Top-down, indexed by the level it produces (all but the deepest).
        self.td_upper = nn.ModuleList(ConvBNLeaky(widths[i + 1], widths[i], 1) for i in levels)
        self.td_lateral = nn.ModuleList(ConvBNLeaky(inputs[i].channels, widths[i], 1) for i in levels)
        self.td_blocks = nn.ModuleList(neck_block(2 * widths[i], widths[i], num_convs, csp) for i in levels)
        # Bottom-up, indexed by the level it produces minus one (all but the shallowest).
        self.bu_down = nn.ModuleList(ConvBNLeaky(widths[i], widths[i + 1], 3, stride=2) for i in levels)
        self.bu_blocks = nn.ModuleList(neck_block(2 * widths[i + 1], widths[i + 1], num_convs, csp) for i in levels)
        self.feature_info = [
            FeatureInfo(f"p{pyramid_level(info.stride)}", width, info.stride)
            for info, width in zip(inputs, widths, strict=True)
        ]

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        sources = [features[name] for name in self.in_features]
        top_down = [self.deepest(sources[-1])]  # deep → shallow
        for i in reversed(range(len(sources) - 1)):
            upper = F.interpolate(self.td_upper[i](top_down[-1]), scale_factor=2.0, mode="nearest")
            lateral = self.td_lateral[i](sources[i])
            top_down.append(self.td_blocks[i](torch.cat((lateral, _match(upper, lateral)), dim=1)))
        top_down.reverse()  # shallow → deep
        outputs = [top_down[0]]
        for i in range(len(sources) - 1):
            down = _match(self.bu_down[i](outputs[-1]), top_down[i + 1])
            outputs.append(self.bu_blocks[i](torch.cat((down, top_down[i + 1]), dim=1)))
        return {info.name: out for info, out in zip(self.feature_info, outputs, strict=True)}
