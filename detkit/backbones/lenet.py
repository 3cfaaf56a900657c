"""A LeNet-style toy backbone for teaching (after LeCun et al., 1998): small convolutions, each
followed by 2x2 subsampling, so that every stage halves the map and the whole network fits on a
slide and trains in seconds on a CPU.

    stem conv 5x5, 6 ch, pool (s2) | conv 5x5, 16 (s4) | conv 3x3, 32 -> c3 (s8)
    | conv 3x3, 64 -> c4 (s16) | conv 3x3, 120 -> c5 (s32)

LeNet-5 had two convolutions (6 and 16 filters of 5x5), average-pool subsampling and tanh; this toy
keeps the 5x5 convolutions and the average pooling, uses ReLU (it trains from scratch far more
easily) and adds three 3x3 stages so it reaches the stride 32 every detector here expects.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from detkit.backbones import BACKBONES
from detkit.backbones.alexnet import PlainConvBackbone
from detkit.backbones.base import Pretrained

_LENET_PLAN: tuple[tuple, ...] = (
    ("conv", 6, 5, 1, 2), ("avgpool",), ("|",),
    ("conv", 16, 5, 1, 2), ("avgpool",), ("|",),
    ("conv", 32, 3, 1, 1), ("avgpool",), ("|",),
    ("conv", 64, 3, 1, 1), ("avgpool",), ("|",),
    ("conv", 120, 3, 1, 1), ("avgpool",), ("|",),
)  # fmt: skip


def _no_imagenet_weights() -> tuple[dict[str, Tensor], str]:
    raise RuntimeError("the LeNet-style toy has no ImageNet weights; use pretrained=false or a path to a state dict")


@BACKBONES.register
def lenet(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    batch_norm: bool = False,
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> PlainConvBackbone:
    """LeNet-style toy: ``c3`` 32 ch / stride 8, ``c4`` 64 / 16, ``c5`` 120 / 32.

    ``pretrained``: False (Kaiming init) or a path to a state dict of this layout. ``batch_norm``:
    BatchNorm after every convolution. ``frozen_stages``: 0 trains everything, k freezes the stem
    and stages 1..k.
    """
    model = PlainConvBackbone(_LENET_PLAN, batch_norm=batch_norm, out_features=out_features)
    return model.finish_setup(
        pretrained=pretrained, imagenet_weights=_no_imagenet_weights, frozen_stages=frozen_stages, freeze_bn=freeze_bn
    )
