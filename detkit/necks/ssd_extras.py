"""SSD neck: turns backbone features into SSD's source maps, shallow to deep.

    backbone outputs ─► [L2 norm on chosen ones] ─► [pool5 + fc6 + fc7 on the deepest] ─► extras

SSD300-VGG16 (Liu et al., 2016): ``c3`` = conv4_3 with L2 normalisation (learnable per-channel
scale, initialised to 20), and on ``c4`` = conv5_3 the reduced VGG head as convolutions: pool5
3×3 stride 1, fc6 3×3 dilation 6 (1024), fc7 1×1 (1024). Then the extra layers conv8 … conv11,
each a 1×1 reduction and a 3×3 convolution (stride 2, or stride 1 without padding for the last
two): 38, 19, 10, 5, 3, 1 cells at 300 px. On ResNet-18 and MobileNet v1 the sources are the
backbone outputs plus stride-2 extras; ``depthwise=True`` makes the extras depthwise-separable
(SSDLite). Map sizes follow from the input: nothing here assumes 300 px.

Output names: the backbone's names (``fc7`` for the fc-layer output), then ``extra1`` …
``extraK``. ``feature_info`` strides of the extras are nominal (the product of the layer strides);
SSD's default boxes use the maps' actual sizes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.layers.conv_bn_act import conv_bn_act
from detkit.structures import FeatureInfo

# SSD300's conv8_2 … conv11_2: (reduction channels, output channels, stride, padding).
SSD300_EXTRAS: tuple[tuple[int, int, int, int], ...] = (
    (256, 512, 2, 1),
    (128, 256, 2, 1),
    (128, 256, 1, 0),
    (128, 256, 1, 0),
)


class L2Norm(nn.Module):
    """Scale each position's channel vector to unit L2 norm, then by a learnt per-channel weight
    (ParseNet): conv4_3's activations are much larger than deeper layers' (SSD paper, §3.1)."""

    def __init__(self, channels: int, initial_scale: float = 20.0, eps: float = 1e-10) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(initial_scale)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=1, eps=self.eps) * self.weight.view(1, -1, 1, 1)


class ExtraLayer(nn.Sequential):
    """1×1 reduction to ``mid_channels``, then a 3×3 convolution (depthwise + 1×1 pointwise when
    ``depthwise``) to ``out_channels``: ``[N, C, H, W] → [N, out, ⌊(H + 2p − 3)/s⌋ + 1, …]``."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        *,
        stride: int,
        padding: int,
        depthwise: bool,
        batch_norm: bool,
    ) -> None:
        layers = conv_bn_act(in_channels, mid_channels, 1, batch_norm=batch_norm)
        if depthwise:
            layers += conv_bn_act(
                mid_channels,
                mid_channels,
                3,
                stride=stride,
                padding=padding,
                groups=mid_channels,
                batch_norm=batch_norm,
            )
            layers += conv_bn_act(mid_channels, out_channels, 1, batch_norm=batch_norm)
        else:
            layers += conv_bn_act(
                mid_channels, out_channels, 3, stride=stride, padding=padding, batch_norm=batch_norm
            )
        super().__init__(*layers)
        self.padding = padding


class SSDExtras(nn.Module):
    """``forward(features: dict[str, Tensor]) -> dict[str, Tensor]`` of SSD's source maps.

    ``feature_info``: the backbone's outputs; all of them are sources, in order.
    ``l2_norm``: names of backbone outputs to L2-normalise (``["c3"]`` for VGG's conv4_3).
    ``fc_layers``: replace the deepest backbone output by VGG's pool5 (3×3/s1) + fc6 (3×3,
    ``fc6_dilation``) + fc7 (1×1), ``fc_channels`` wide.
    ``extras``: one ``(mid_channels, out_channels, stride, padding)`` per extra layer, each
    applied to the previous source. ``depthwise``: SSDLite-style extras. ``batch_norm``: BN after
    every convolution of the neck (helps training from scratch; the paper has none).
    """

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        l2_norm: Sequence[str] = (),
        l2_norm_scale: float = 20.0,
        fc_layers: bool = False,
        fc_channels: int = 1024,
        fc6_dilation: int = 6,
        extras: Sequence[Sequence[int]] = SSD300_EXTRAS,
        depthwise: bool = False,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        feature_info = list(feature_info)
        if not feature_info:
            raise ValueError("SSDExtras needs at least one backbone output in feature_info")
        names = [info.name for info in feature_info]
        unknown = [name for name in l2_norm if name not in names]
        if unknown:
            raise ValueError(f"l2_norm names {unknown} that the backbone does not output; it outputs {names}")
        self.in_names = names
        self.l2_norm = nn.ModuleDict(
            {info.name: L2Norm(info.channels, l2_norm_scale) for info in feature_info if info.name in l2_norm}
        )
        self.feature_info: list[FeatureInfo] = list(feature_info)
        self.fc: nn.Sequential | None = None
        if fc_layers:
            last = feature_info[-1]
            self.fc = nn.Sequential(
                nn.MaxPool2d(3, stride=1, padding=1),
                *conv_bn_act(
                    last.channels,
                    fc_channels,
                    3,
                    padding=fc6_dilation,
                    dilation=fc6_dilation,
                    batch_norm=batch_norm,
                ),
                *conv_bn_act(fc_channels, fc_channels, 1, batch_norm=batch_norm),
            )
            self.feature_info[-1] = FeatureInfo("fc7", fc_channels, last.stride)
        self.extras = nn.ModuleList()
        previous = self.feature_info[-1]
        for index, spec in enumerate(extras, start=1):
            if len(spec) != 4:
                raise ValueError(
                    f"extra layer {index}: expected (mid_channels, out_channels, stride, padding), got {list(spec)}"
                )
            mid_channels, out_channels, stride, padding = (int(v) for v in spec)
            self.extras.append(
                ExtraLayer(
                    previous.channels,
                    mid_channels,
                    out_channels,
                    stride=stride,
                    padding=padding,
                    depthwise=depthwise,
                    batch_norm=batch_norm,
                )
            )
            previous = FeatureInfo(f"extra{index}", out_channels, previous.stride * stride)
            self.feature_info.append(previous)
        self._init_weights()

    def _init_weights(self) -> None:
        modules = list(self.extras.modules()) + (list(self.fc.modules()) if self.fc is not None else [])
        for module in modules:
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        missing = [name for name in self.in_names if name not in features]
        if missing:
            raise KeyError(f"SSDExtras expects backbone outputs {self.in_names}, missing {missing}")
        sources = {name: features[name] for name in self.in_names}
        for name, norm in self.l2_norm.items():
            sources[name] = norm(sources[name])
        if self.fc is not None:
            deepest = sources.pop(self.in_names[-1])
            sources["fc7"] = self.fc(deepest)
        x = next(reversed(sources.values()))
        for index, layer in enumerate(self.extras, start=1):
            height, width = x.shape[-2:]
            if min(height, width) + 2 * layer.padding < 3:
                raise ValueError(
                    f"SSD extra layer {index} (3×3, padding {layer.padding}) gets a {height}×{width} map: the "
                    "input is too small for this many extra layers; drop the last extras or give them padding 1"
                )
            x = layer(x)
            sources[f"extra{index}"] = x
        return sources
