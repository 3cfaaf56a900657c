"""AlexNet (Krizhevsky et al., 2012; the original R-CNN's network) and ZFNet (Zeiler & Fergus, 2014).

Both are five convolutions and three overlapping 3x3 stride-2 max pools, built from a layer plan
into one ``features`` Sequential. AlexNet keeps torchvision's layer indices and channels
(64, 192, 384, 256, 256), so ``features.N.*`` keys of torchvision's ImageNet state dict load as
they are. ZFNet is the paper's: a 7x7 stride-2 first layer (96 filters) instead of 11x11 stride 4,
and a stride-2 second convolution (256 filters), which together keep the overall stride.

    AlexNet  conv1 11x11 s4 | pool1 -> conv2 5x5 -> c3 (s8) | pool2 -> conv3..5 -> c4 (s16) | pool5 -> c5 (s32)
    ZFNet    conv1 7x7 s2 | pool1 (s4) | conv2 5x5 s2 -> c3 (s8) | pool2 -> conv3..5 -> c4 (s16) | pool3 -> c5

Stages, for ``frozen_stages``: stem = conv1 (stride 4 for AlexNet, 2 for ZFNet), stage 1 = nothing
(AlexNet) / pool1 (ZFNet), stage 2 = up to ``c3``, stage 3 = up to ``c4``, stage 4 = the last pool.

Paddings differ from torchvision's (they carry no weights, so the ImageNet weights still load):
"same" padding everywhere (conv1 pads 5, the pools pad 1) makes every output exactly
``ceil(H / stride)`` like the other backbones, where torchvision's padding gives 15 cells at
stride 4 for a 64-pixel input. The local response normalisation of both papers is left out
(torchvision's AlexNet has none either); ``batch_norm=True`` adds BatchNorm after every convolution
instead (no ImageNet weights for that variant), which helps training from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor, nn

from detkit.backbones import BACKBONES
from detkit.backbones.base import FEATURE_STAGES, Pretrained, SequentialFeaturesBackbone, init_conv_weights
from detkit.backbones.pretrained import torchvision_imagenet_weights

# Plan entries: ("conv", out_channels, kernel, stride, padding), ("pool",) (3x3 max pool, stride 2,
# padding 1: overlapping, as in both papers) or ("avgpool",) (2x2 average, stride 2, LeNet's
# subsampling); "|" ends a stage (the stem first, then stages 1..4).
_ALEXNET_PLAN: tuple[tuple, ...] = (
    ("conv", 64, 11, 4, 5), ("|",),
    ("|",),
    ("pool",), ("conv", 192, 5, 1, 2), ("|",),
    ("pool",), ("conv", 384, 3, 1, 1), ("conv", 256, 3, 1, 1), ("conv", 256, 3, 1, 1), ("|",),
    ("pool",), ("|",),
)  # fmt: skip
_ZFNET_PLAN: tuple[tuple, ...] = (
    ("conv", 96, 7, 2, 3), ("|",),
    ("pool",), ("|",),
    ("conv", 256, 5, 2, 2), ("|",),
    ("pool",), ("conv", 384, 3, 1, 1), ("conv", 384, 3, 1, 1), ("conv", 256, 3, 1, 1), ("|",),
    ("pool",), ("|",),
)  # fmt: skip


def build_layers(plan: Sequence[tuple], *, batch_norm: bool) -> tuple[list[nn.Module], list[int], dict[str, int]]:
    """Layers of ``plan``, the ``features`` index where the stem and each stage end (exclusive),
    and each stage's output channels keyed by feature name."""
    layers: list[nn.Module] = []
    ends: list[int] = []
    stage_channels: list[int] = []
    in_channels = 3
    for entry in plan:
        if entry[0] == "|":
            ends.append(len(layers))
            stage_channels.append(in_channels)
        elif entry[0] == "pool":
            layers.append(nn.MaxPool2d(3, stride=2, padding=1))
        elif entry[0] == "avgpool":
            # ceil_mode: an odd side rounds up like every other stride-2 layer here.
            layers.append(nn.AvgPool2d(2, stride=2, ceil_mode=True))
        else:
            _, out_channels, kernel, stride, padding = entry
            layers.append(nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
            in_channels = out_channels
    channels = {name: stage_channels[stage] for name, stage in FEATURE_STAGES.items()}
    return layers, ends, channels


class PlainConvBackbone(SequentialFeaturesBackbone):
    """A ``features`` Sequential built from a layer plan, cut after stage ``depth``, read out at
    the ends of stages 2, 3 and 4 (AlexNet, ZFNet, the LeNet-style toy).

    ``forward(images: Tensor[N, 3, H, W]) -> {"c3": [N, C3, H/8, W/8], "c4": [N, C4, H/16, W/16],
    "c5": [N, C5, H/32, W/32]}`` (sizes rounded up), restricted to ``out_features``.
    """

    def __init__(self, plan: Sequence[tuple], *, batch_norm: bool, out_features: str | Sequence[str]) -> None:
        layers, ends, channels = build_layers(plan, batch_norm=batch_norm)
        super().__init__(out_features=out_features, channels=channels)
        self.set_features(nn.Sequential(*layers[: ends[self.depth]]), ends)
        init_conv_weights(self.modules())


def _no_imagenet_weights(arch: str) -> tuple[dict[str, Tensor], str]:
    raise RuntimeError(
        f"there are no ImageNet weights for {arch}; pass pretrained=/path/to/state_dict.pth (keys "
        f"features.N.*, as this backbone names them) or train from scratch (pretrained=false)"
    )


@BACKBONES.register
def alexnet(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    batch_norm: bool = False,
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> PlainConvBackbone:
    """AlexNet backbone (torchvision's layout): ``c3`` 192 ch / stride 8, ``c4`` 256 / 16, ``c5`` 256 / 32.

    ``pretrained``: False (Kaiming init), True (torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` from
    the torch hub cache; not with ``batch_norm``) or a path to a state dict. ``batch_norm``: BatchNorm
    after every convolution. ``frozen_stages``: 0 trains everything, k freezes the stem and stages 1..k.
    """
    weights = torchvision.models.AlexNet_Weights.IMAGENET1K_V1
    model = PlainConvBackbone(_ALEXNET_PLAN, batch_norm=batch_norm, out_features=out_features)

    def imagenet() -> tuple[dict[str, Tensor], str]:
        if batch_norm:
            return _no_imagenet_weights("alexnet with batch_norm=true")
        return torchvision_imagenet_weights(weights, arch="alexnet")

    return model.finish_setup(
        pretrained=pretrained, imagenet_weights=imagenet, frozen_stages=frozen_stages, freeze_bn=freeze_bn
    )


@BACKBONES.register
def zfnet(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    batch_norm: bool = False,
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> PlainConvBackbone:
    """ZFNet backbone: ``c3`` 256 ch / stride 8, ``c4`` 256 / 16, ``c5`` 256 / 32.

    ``pretrained``: False (Kaiming init) or a path to a state dict of this layout (no ImageNet
    weights are published for it in torchvision). Other arguments as :func:`alexnet`.
    """
    model = PlainConvBackbone(_ZFNET_PLAN, batch_norm=batch_norm, out_features=out_features)
    return model.finish_setup(
        pretrained=pretrained,
        imagenet_weights=lambda: _no_imagenet_weights("zfnet"),
        frozen_stages=frozen_stages,
        freeze_bn=freeze_bn,
    )
