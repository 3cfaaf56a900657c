"""YOLOv3's neck: a top-down path of upsample-and-concatenate over the backbone's c3/c4/c5.

The deepest map goes through a *conv set* (alternating 1×1 and 3×3 convolutions, darknet's five
layers by default) and becomes ``p5``; a 1×1 convolution halves it, nearest upsampling doubles its
resolution, it is concatenated with the next shallower backbone map, and another conv set gives
``p4``; likewise ``p3``. Unlike an FPN it concatenates instead of adding, so the levels keep their
own widths. Works on any backbone that exposes ``feature_info`` (names, channels, strides).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.layers.conv_bn_act import ConvBNLeaky
from detkit.necks.levels import input_levels, pyramid_level
from detkit.structures import FeatureInfo


def conv_set(in_channels: int, channels: int, num_convs: int) -> nn.Sequential:
    """``num_convs`` (odd) layers: 1×1 to ``channels``, then 3×3 to 2·``channels`` and 1×1 back, alternating."""
    if num_convs < 1 or num_convs % 2 == 0:
        raise ValueError(f"num_convs must be odd and >= 1 (1x1 and 3x3 alternate, ending on 1x1), got {num_convs}")
    layers = [ConvBNLeaky(in_channels, channels, 1)]
    for _ in range(num_convs // 2):
        layers += [ConvBNLeaky(channels, 2 * channels, 3), ConvBNLeaky(2 * channels, channels, 1)]
    return nn.Sequential(*layers)


class YOLOv3FPN(nn.Module):
    """``forward(features: dict[str, Tensor]) -> {"p3": [N, channels[0], H/8, W/8], "p4": ..., "p5": ...}``.

    ``feature_info``: the backbone's outputs (shallow → deep), typically c3/c4/c5 at strides
    8/16/32; ``in_features`` picks a subset (default: all). ``channels``: width of each output,
    shallow → deep (darknet: 128, 256, 512). Output names are ``p<k>`` for stride 2^k.
    """

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        in_features: Sequence[str] | None = None,
        channels: Sequence[int] = (128, 256, 512),
        num_convs: int = 5,
    ) -> None:
        super().__init__()
        names, inputs = input_levels(feature_info, in_features, "YOLOv3FPN")
        if len(channels) != len(inputs):
            raise ValueError(f"YOLOv3FPN: {len(channels)} output widths for {len(inputs)} input levels {names}")
        self.in_features = [info.name for info in inputs]
        deep_first = list(zip(reversed(inputs), reversed(list(channels)), strict=True))
        self.conv_sets = nn.ModuleList()
        self.laterals = nn.ModuleList()
        previous: int | None = None
        for info, width in deep_first:
            in_channels = info.channels if previous is None else info.channels + previous // 2
            if previous is not None:
                self.laterals.append(ConvBNLeaky(previous, previous // 2, 1))
            self.conv_sets.append(conv_set(in_channels, width, num_convs))
            previous = width
        self.feature_info = [
            FeatureInfo(f"p{pyramid_level(info.stride)}", width, info.stride)
            for info, width in zip(inputs, channels, strict=True)
        ]

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        outputs: list[Tensor] = []
        x: Tensor | None = None
        for i, name in enumerate(reversed(self.in_features)):
            source = features[name]
            if x is not None:
                lateral = self.laterals[i - 1](x)
                # Odd input sizes leave a map one cell short of exactly double: match it.
                lateral = F.interpolate(lateral, size=source.shape[-2:], mode="nearest")
                source = torch.cat((lateral, source), dim=1)
            x = self.conv_sets[i](source)
            outputs.append(x)
        return {info.name: out for info, out in zip(self.feature_info, reversed(outputs), strict=True)}
