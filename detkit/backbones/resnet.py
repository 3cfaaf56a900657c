"""ResNet-18 trunk from torchvision, exposing layer2/3/4 as ``c3``/``c4``/``c5``.

The modules keep torchvision's names (``conv1``, ``bn1``, ``layer1``...), so torchvision's ImageNet
state dicts load without any key mapping; ``fc`` (and ``avgpool``) are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor, nn

from detkit.backbones import BACKBONES
from detkit.backbones.base import Backbone, Pretrained
from detkit.backbones.pretrained import torchvision_imagenet_weights

_STAGE_LAYERS = ("layer1", "layer2", "layer3", "layer4")
_FEATURE_LAYERS = {"c3": "layer2", "c4": "layer3", "c5": "layer4"}


class ResNetBackbone(Backbone):
    """Stem (conv1, bn1, relu, maxpool: stride 4) then ``layer1..layer{depth}``.

    ``forward(images: Tensor[N, 3, H, W]) -> {"c3": [N, 128, H/8, W/8], "c4": [N, 256, H/16, W/16],
    "c5": [N, 512, H/32, W/32]}``, restricted to ``out_features``.
    """

    def __init__(self, network: torchvision.models.ResNet, *, out_features: str | Sequence[str]) -> None:
        channels = {
            name: getattr(network, layer)[-1].conv2.out_channels for name, layer in _FEATURE_LAYERS.items()
        }
        super().__init__(out_features=out_features, channels=channels)
        self.conv1 = network.conv1
        self.bn1 = network.bn1
        self.relu = network.relu
        self.maxpool = network.maxpool
        self._stage_names = _STAGE_LAYERS[: self.depth]
        for layer in self._stage_names:
            self.add_module(layer, getattr(network, layer))
        self._outputs = {layer: name for name, layer in _FEATURE_LAYERS.items() if name in self.out_features}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        features: dict[str, Tensor] = {}
        for layer in self._stage_names:
            x = getattr(self, layer)(x)
            if layer in self._outputs:
                features[self._outputs[layer]] = x
        return features

    def stage_modules(self) -> list[list[nn.Module]]:
        stem: list[nn.Module] = [self.conv1, self.bn1]
        return [stem] + [[getattr(self, layer)] for layer in self._stage_names]

    def is_unbuilt_key(self, key: str) -> bool:
        top = key.split(".", 1)[0]
        return top in _STAGE_LAYERS and top not in self._stage_names


@BACKBONES.register
def resnet18(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> ResNetBackbone:
    """ResNet-18 backbone: ``c3`` 128 ch / stride 8, ``c4`` 256 / 16, ``c5`` 512 / 32.

    ``pretrained``: False (Kaiming init, torchvision's), True (ImageNet ``ResNet18_Weights.IMAGENET1K_V1``
    via the torch hub cache) or a path to a state dict (torchvision or detkit keys).
    ``frozen_stages``: 0 trains everything, k freezes the stem and ``layer1..layerk``.
    ``freeze_bn``: every BatchNorm becomes ``FrozenBatchNorm2d`` (for small-batch fine-tuning).
    """
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    model = ResNetBackbone(torchvision.models.resnet18(), out_features=out_features)
    return model.finish_setup(
        pretrained=pretrained,
        imagenet_weights=lambda: torchvision_imagenet_weights(weights, arch="resnet18"),
        frozen_stages=frozen_stages,
        freeze_bn=freeze_bn,
    )
