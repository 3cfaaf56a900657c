"""MobileNet v1 (Howard et al., 2017): a 3x3 stride-2 convolution, then 13 depthwise-separable blocks.

Channel and stride plan of the paper, times the width multiplier ``width_mult`` (alpha):

    stem 32 s2 | 64 | 128 s2, 128 | 256 s2, 256 -> c3 | 512 s2, 5 x 512 -> c4 | 1024 s2, 1024 -> c5

Stages, for ``frozen_stages``: stem = first convolution + the 64-channel block (stride 2),
stage 1 = the 128 blocks (stride 4), stage 2 = the 256 blocks (stride 8, ``c3``), stage 3 = the
512 blocks (stride 16, ``c4``), stage 4 = the 1024 blocks (stride 32, ``c5``).

torchvision ships no MobileNet v1, so ``pretrained=True`` reads ``mobilenet_v1.pth`` (or
``mobilenet_v1_<alpha>.pth`` for alpha != 1) from ``$DETKIT_WEIGHTS`` or ``./weights/``: a state
dict saved from this module with the same ``width_mult``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from detkit.backbones import BACKBONES
from detkit.backbones.base import (
    FEATURE_STAGES,
    Pretrained,
    StemBlocksBackbone,
    init_conv_weights,
)
from detkit.backbones.pretrained import find_weights_file, read_state_dict
from detkit.layers.conv_bn_act import conv_bn_act

_STEM_CHANNELS = 32
# (output channels, stride) of the 13 depthwise-separable blocks at width 1.0.
_BLOCK_PLAN: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)  # fmt: skip
# Exclusive end, in the block list, of the stem and of stages 1..4.
_STAGE_ENDS = (1, 3, 5, 11, 13)


def scaled_channels(channels: int, width_mult: float, divisor: int = 8) -> int:
    """``channels * width_mult`` rounded to the nearest multiple of ``divisor`` (at least ``divisor``).

    Rounding never loses more than 10 % of the channels: hardware likes multiples of 8, accuracy
    does not like thinner layers than asked for.
    """
    target = channels * width_mult
    rounded = max(divisor, int(target + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * target:
        rounded += divisor
    return rounded


class DepthwiseSeparableConv(nn.Module):
    """3x3 depthwise convolution + BN + ReLU, then 1x1 pointwise convolution + BN + ReLU.

    ``forward(x: Tensor[N, in_channels, H, W]) -> Tensor[N, out_channels, ceil(H/s), ceil(W/s)]``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, 3, stride=stride, padding=1, groups=in_channels, bias=False
        )
        self.depthwise_bn = nn.BatchNorm2d(in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pointwise_bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.depthwise_bn(self.depthwise(x)))
        return self.relu(self.pointwise_bn(self.pointwise(x)))


class MobileNetV1Backbone(StemBlocksBackbone):
    """``stem`` then ``blocks[:end of stage depth]``, read out at the ends of stages 2, 3 and 4.

    ``forward(images: Tensor[N, 3, H, W]) -> {"c3": [N, 256a, H/8, W/8], "c4": [N, 512a, H/16, W/16],
    "c5": [N, 1024a, H/32, W/32]}`` (a = width multiplier, rounded), restricted to ``out_features``.
    """

    def __init__(self, *, width_mult: float, out_features: str | Sequence[str]) -> None:
        if not (isinstance(width_mult, int | float) and math.isfinite(width_mult) and width_mult > 0):
            raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")
        plan = [(scaled_channels(c, width_mult), s) for c, s in _BLOCK_PLAN]
        channels = {name: plan[_STAGE_ENDS[stage] - 1][0] for name, stage in FEATURE_STAGES.items()}
        super().__init__(out_features=out_features, channels=channels)
        self.width_mult = float(width_mult)
        stem_channels = scaled_channels(_STEM_CHANNELS, width_mult)
        stem = nn.Sequential(*conv_bn_act(3, stem_channels, 3, stride=2, padding=1))
        blocks, in_channels = [], stem_channels
        for out_channels, stride in plan[: _STAGE_ENDS[self.depth]]:
            blocks.append(DepthwiseSeparableConv(in_channels, out_channels, stride))
            in_channels = out_channels
        self.set_stem_and_blocks(stem, nn.Sequential(*blocks), _STAGE_ENDS)
        init_conv_weights(self.modules())


def weights_file_name(width_mult: float) -> str:
    """Name of the ImageNet weights file ``pretrained=True`` looks for."""
    return "mobilenet_v1.pth" if width_mult == 1.0 else f"mobilenet_v1_{width_mult:g}.pth"


@BACKBONES.register
def mobilenet_v1(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    width_mult: float = 1.0,
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> MobileNetV1Backbone:
    """MobileNet v1 backbone: ``c3`` 256a ch / stride 8, ``c4`` 512a / 16, ``c5`` 1024a / 32.

    ``pretrained``: False (Kaiming init), True (``weights/mobilenet_v1.pth``, see the module
    docstring) or a path to a state dict of this architecture. ``frozen_stages``: 0 trains
    everything, k freezes the stem and stages 1..k. ``freeze_bn``: every BatchNorm becomes
    ``FrozenBatchNorm2d``.
    """
    model = MobileNetV1Backbone(width_mult=width_mult, out_features=out_features)
    file_name = weights_file_name(model.width_mult)

    def imagenet_weights() -> tuple[dict[str, Tensor], str]:
        path: Path = find_weights_file(file_name, arch=f"mobilenet_v1 (width_mult={model.width_mult:g})")
        return read_state_dict(path), str(path)

    return model.finish_setup(
        pretrained=pretrained,
        imagenet_weights=imagenet_weights,
        frozen_stages=frozen_stages,
        freeze_bn=freeze_bn,
    )
