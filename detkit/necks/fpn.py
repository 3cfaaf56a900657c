"""Feature pyramid network (Lin et al., 2017, arXiv 1612.03144) with RetinaNet's extra levels.

Each backbone map c_k gets a 1×1 *lateral* convolution to a common width; going from the deepest
level up, the coarser merged map is upsampled (nearest) and added to the next lateral, and a 3×3
*output* convolution smooths each sum into p_k. Above the backbone, RetinaNet (arXiv 1708.02002,
section 4) adds p6 by a 3×3 stride-2 convolution on c5 and p7 by ReLU then a 3×3 stride-2
convolution on p6 (``extra_mode="conv"``); Faster R-CNN with FPN adds p6 by max-pooling p5 with
stride 2 (``extra_mode="pool"``).

Works on any backbone that exposes ``feature_info`` (names, channels, strides): with detkit's
backbones, c3/c4/c5 at strides 8/16/32 give p3–p5, and two extra levels give p6, p7 (strides 64,
128). Every output has ``out_channels`` channels, which is what lets one head serve all levels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from detkit.layers.norm import norm_layer
from detkit.necks.levels import input_levels, pyramid_level
from detkit.structures import FeatureInfo

FPN_EXTRA_MODES = ("conv", "pool")


def _conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, norm: str) -> nn.Sequential:
    # A bias is redundant before a normalisation's own shift.
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=norm == "none")
    return nn.Sequential(conv, norm_layer(norm, out_channels))


class FPN(nn.Module):
    """``forward(features: dict[str, Tensor]) -> {"p3": [N, out_channels, ⌈H/8⌉, ⌈W/8⌉], ..., "p7": ...}``.

    ``feature_info``: the backbone's outputs; ``in_features`` picks a subset (default: all), each
    stride a power of two. ``extra_levels``: levels above the deepest input, each at twice the
    previous stride (RetinaNet: 2, giving p6, p7; Faster R-CNN: 1, pooled). ``extra_source``: what
    the first conv extra level reads, ``"input"`` (the deepest backbone map, the paper) or
    ``"output"`` (the deepest merged map, cheaper when the backbone map is wide). ``outputs``: the
    levels to return (default: all); ``["p3"]`` keeps the top-down pathway and only the finest
    level's output convolution, which gives a one-map detector the deeper maps' semantics at
    stride 8 (the others' convolutions are not built, so no parameter goes unused). ``norm``:
    normalisation after every convolution (``"none"`` as in the paper; ``"bn"``/``"gn"`` help
    from scratch). Output names are ``p<k>`` for stride 2^k.
    """

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        in_features: Sequence[str] | None = None,
        out_channels: int = 256,
        extra_levels: int = 2,
        extra_mode: str = "conv",
        extra_source: str = "input",
        norm: str = "none",
        outputs: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        _, inputs = input_levels(feature_info, in_features, "FPN")
        if extra_mode not in FPN_EXTRA_MODES:
            raise ValueError(f"FPN: unknown extra_mode {extra_mode!r}; choose one of {', '.join(FPN_EXTRA_MODES)}")
        if extra_source not in ("input", "output"):
            raise ValueError(f"FPN: unknown extra_source {extra_source!r}; choose 'input' or 'output'")
        if extra_levels < 0:
            raise ValueError(f"FPN: extra_levels must be >= 0, got {extra_levels}")
        strides = [info.stride for info in inputs]
        if any(s & (s - 1) for s in strides) or any(b != 2 * a for a, b in zip(strides, strides[1:], strict=False)):
            raise ValueError(f"FPN: input strides {strides} must be consecutive powers of two (e.g. c3, c4, c5)")
        self.in_features = [info.name for info in inputs]
        level_names = [f"p{pyramid_level(info.stride)}" for info in inputs]
        kept = list(outputs) if outputs is not None else level_names
        unknown = [name for name in kept if name not in level_names]
        if unknown:
            raise ValueError(f"FPN: outputs {unknown} are not among its input levels {level_names}")
        if outputs is not None and extra_levels:
            raise ValueError("FPN: outputs= selects input levels only; set extra_levels=0 with it")
        # Finest first, like the merged maps the output convolutions read.
        self.kept = [name in kept for name in level_names]
        self.laterals = nn.ModuleList(_conv(info.channels, out_channels, 1, 1, norm) for info in inputs)
        self.outputs = nn.ModuleList(_conv(out_channels, out_channels, 3, 1, norm) for keep in self.kept if keep)
        self.extra_mode = extra_mode
        self.extra_source = extra_source
        self.extras = nn.ModuleList()
        if extra_mode == "conv":
            for i in range(extra_levels):
                in_channels = inputs[-1].channels if i == 0 and extra_source == "input" else out_channels
                self.extras.append(_conv(in_channels, out_channels, 3, 2, norm))
        self.num_extra = extra_levels
        deepest = strides[-1]
        self.feature_info = [
            FeatureInfo(name, out_channels, info.stride)
            for name, info, keep in zip(level_names, inputs, self.kept, strict=True)
            if keep
        ] + [
            FeatureInfo(f"p{pyramid_level(deepest) + i + 1}", out_channels, deepest * 2 ** (i + 1))
            for i in range(extra_levels)
        ]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                # detectron2's FPN init (Caffe2's XavierFill): uniform with gain 1 for the plain convolutions.
                nn.init.kaiming_uniform_(module.weight, a=1)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        merged: list[Tensor] = []
        top: Tensor | None = None
        for name, lateral in zip(reversed(self.in_features), reversed(self.laterals), strict=True):
            x = lateral(features[name])
            if top is not None:
                # Odd input sizes leave a map one cell short of exactly double: match its size.
                x = x + F.interpolate(top, size=x.shape[-2:], mode="nearest")
            merged.append(x)
            top = x
        kept_maps = [x for x, keep in zip(reversed(merged), self.kept, strict=True) if keep]
        outputs = [conv(x) for conv, x in zip(self.outputs, kept_maps, strict=True)]
        if self.num_extra:
            if self.extra_mode == "pool":
                # A 1×1 max-pool with stride 2 subsamples p5 (what torchvision's and detectron2's FPN do).
                for _ in range(self.num_extra):
                    outputs.append(F.max_pool2d(outputs[-1], kernel_size=1, stride=2))
            else:
                x = features[self.in_features[-1]] if self.extra_source == "input" else outputs[-1]
                for i, conv in enumerate(self.extras):
                    # p7 reads ReLU(p6): the paper's ordering (no ReLU on c5 before p6).
                    x = conv(F.relu(x) if i > 0 else x)
                    outputs.append(x)
        return {info.name: out for info, out in zip(self.feature_info, outputs, strict=True)}
