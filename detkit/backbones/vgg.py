"""VGG-16 (optionally with BatchNorm) from torchvision's ``features`` layer plan.

Outputs: ``c3`` = conv4_3 after ReLU (stride 8), ``c4`` = conv5_3 after ReLU (stride 16: pool4
applied, pool5 not; SSD puts its own pool5/fc6/fc7 on top of it), ``c5`` = after pool5 (stride 32).
All have 512 channels. The ``features`` Sequential keeps torchvision's layer indices, so
``features.N.*`` keys of torchvision's ImageNet state dicts load as they are.

Stages, for ``frozen_stages``: stem = conv1_x + pool1 + conv2_x + pool2 (stride 4; the layers
Fast R-CNN keeps fixed), stage 1 = conv3_x, stage 2 = pool3 + conv4_x, stage 3 = pool4 + conv5_x,
stage 4 = pool5.

Pooling rounds up (``ceil_mode``, as Caffe's VGG did), so every output is ``ceil(H / stride)``
like the ResNet and MobileNet backbones, and a 300-pixel SSD input gives a 38x38 conv4_3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from detkit.backbones import BACKBONES
from detkit.backbones.base import Pretrained, SequentialFeaturesBackbone, init_conv_weights
from detkit.backbones.pretrained import torchvision_imagenet_weights

_VGG16_PLAN = cfgs["D"]  # 13 convolutions in 5 blocks, "M" = 2x2 max pool


def _stage_ends(batch_norm: bool) -> tuple[list[int], list[int]]:
    """Where the stem and stages 1..4 end (exclusive), as plan entries and as ``features`` indices."""
    pool1, pool2, pool3, pool4, pool5 = (i for i, entry in enumerate(_VGG16_PLAN) if entry == "M")
    plan_ends = [pool2 + 1, pool3, pool4, pool5, pool5 + 1]
    # make_layers turns a conv entry into conv + [BN +] ReLU and a pool entry into one layer.
    sizes = [1 if entry == "M" else 3 if batch_norm else 2 for entry in _VGG16_PLAN]
    return plan_ends, [sum(sizes[:end]) for end in plan_ends]


class VGGBackbone(SequentialFeaturesBackbone):
    """VGG-16's ``features`` up to the end of stage ``depth``, read out at the ends of stages 2, 3 and 4.

    ``forward(images: Tensor[N, 3, H, W]) -> {"c3": [N, 512, H/8, W/8], "c4": [N, 512, H/16, W/16],
    "c5": [N, 512, H/32, W/32]}``, restricted to ``out_features``.
    """

    def __init__(self, *, batch_norm: bool, out_features: str | Sequence[str]) -> None:
        super().__init__(out_features=out_features, channels={"c3": 512, "c4": 512, "c5": 512})
        plan_ends, layer_ends = _stage_ends(batch_norm)
        # Built from a truncated plan: same layer indices (torchvision's keys), no unused layers.
        features = make_layers(_VGG16_PLAN[: plan_ends[self.depth]], batch_norm=batch_norm)
        for layer in features:
            if isinstance(layer, nn.MaxPool2d):
                layer.ceil_mode = True
        self.set_features(features, layer_ends)
        init_conv_weights(self.modules())


@BACKBONES.register
def vgg16(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    batch_norm: bool = False,
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> VGGBackbone:
    """VGG-16 backbone (``batch_norm=True``: VGG-16-BN); ``c3``/``c4``/``c5`` all 512 channels.

    ``pretrained``: False (Kaiming init), True (ImageNet ``VGG16_Weights.IMAGENET1K_V1`` or
    ``VGG16_BN_Weights.IMAGENET1K_V1`` via the torch hub cache) or a path to a state dict
    (torchvision or detkit keys). ``frozen_stages``: 0 trains everything, k freezes the stem and
    stages 1..k. ``freeze_bn``: every BatchNorm becomes ``FrozenBatchNorm2d`` (no-op without BN).
    """
    if batch_norm:
        weights, arch = torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1, "vgg16_bn"
    else:
        weights, arch = torchvision.models.VGG16_Weights.IMAGENET1K_V1, "vgg16"
    model = VGGBackbone(batch_norm=batch_norm, out_features=out_features)
    return model.finish_setup(
        pretrained=pretrained,
        imagenet_weights=lambda: torchvision_imagenet_weights(weights, arch=arch),
        frozen_stages=frozen_stages,
        freeze_bn=freeze_bn,
    )
