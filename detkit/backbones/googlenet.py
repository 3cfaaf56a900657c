"""GoogLeNet (Szegedy et al., 2014; Inception v1) trunk from torchvision, exposing the ends of the
inception groups 3, 4 and 5 as ``c3``/``c4``/``c5``.

    stem conv1 7x7 s2 + maxpool1 (s4) | conv2, conv3 (s4) | maxpool2, inception3a-b -> c3 (480 ch, s8)
    | maxpool3, inception4a-e -> c4 (832, s16) | maxpool4, inception5a-b -> c5 (1024, s32)

The modules keep torchvision's names (``conv1``, ``inception3a``...), so torchvision's ImageNet
state dict loads without key mapping; the auxiliary classifiers (``aux1``, ``aux2``), the pooling and
``fc`` are dropped. torchvision's first three max pools are 3x3 stride 2 with ``ceil_mode``, which
gives ``ceil(H / 2) - 1`` cells for odd sides; here they pad 1 instead, so every output is exactly
``ceil(H / stride)`` like the other backbones (pools carry no weights: the ImageNet weights still load).

torchvision's GoogLeNet weights were trained on inputs scaled to [-1, 1], not on ImageNet-normalised
ones: with those weights set ``transform_input=True`` (converts the detector's ImageNet-normalised
input the way torchvision's own model does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torchvision
from torch import Tensor, nn

from detkit.backbones import BACKBONES
from detkit.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, Pretrained
from detkit.backbones.pretrained import torchvision_imagenet_weights

logger = logging.getLogger(__name__)

# Modules of the stem and of stages 1..4, in order.
_STAGES: tuple[tuple[str, ...], ...] = (
    ("conv1", "maxpool1"),
    ("conv2", "conv3"),
    ("maxpool2", "inception3a", "inception3b"),
    ("maxpool3", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e"),
    ("maxpool4", "inception5a", "inception5b"),
)
_FEATURE_STAGE_ENDS = {"c3": "inception3b", "c4": "inception4e", "c5": "inception5b"}
_UNUSED_PREFIXES = ("aux1.", "aux2.")


def _inception_channels(block: nn.Module) -> int:
    # An inception block concatenates its four branches; the last conv of each sets the channels.
    return sum(branch[-1].conv.out_channels if isinstance(branch, nn.Sequential) else branch.conv.out_channels
               for branch in (block.branch1, block.branch2, block.branch3, block.branch4))


class GoogLeNetBackbone(Backbone):
    """``forward(images: Tensor[N, 3, H, W]) -> {"c3": [N, 480, H/8, W/8], "c4": [N, 832, H/16, W/16],
    "c5": [N, 1024, H/32, W/32]}`` (sizes rounded up), restricted to ``out_features``."""

    def __init__(
        self, network: torchvision.models.GoogLeNet, *, out_features: str | Sequence[str], transform_input: bool
    ) -> None:
        channels = {name: _inception_channels(getattr(network, end)) for name, end in _FEATURE_STAGE_ENDS.items()}
        super().__init__(out_features=out_features, channels=channels)
        for index in (1, 2, 3):
            setattr(network, f"maxpool{index}", nn.MaxPool2d(3, stride=2, padding=1))
        self._stage_names = _STAGES[: self.depth + 1]
        for stage in self._stage_names:
            for name in stage:
                self.add_module(name, getattr(network, name))
        self._built = {name for stage in self._stage_names for name in stage}
        self._outputs = {end: name for name, end in _FEATURE_STAGE_ENDS.items() if name in self.out_features}
        self.transform_input = bool(transform_input)
        # From ImageNet-normalised input to (x - 0.5) / 0.5, per channel: x * scale + shift.
        mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("_input_scale", (std / 0.5).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_input_shift", ((mean - 0.5) / 0.5).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = images * self._input_scale + self._input_shift if self.transform_input else images
        features: dict[str, Tensor] = {}
        for stage in self._stage_names:
            for name in stage:
                x = getattr(self, name)(x)
                if name in self._outputs:
                    features[self._outputs[name]] = x
        return features

    def stage_modules(self) -> list[list[nn.Module]]:
        return [[getattr(self, name) for name in stage] for stage in self._stage_names]

    def is_unbuilt_key(self, key: str) -> bool:
        top = key.split(".", 1)[0]
        known = {name for stage in _STAGES for name in stage}
        return key.startswith(_UNUSED_PREFIXES) or (top in known and top not in self._built)


@BACKBONES.register
def googlenet(
    *,
    pretrained: Pretrained = False,
    out_features: str | Sequence[str] = ("c4",),
    transform_input: bool = False,
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> GoogLeNetBackbone:
    """GoogLeNet backbone: ``c3`` 480 ch / stride 8, ``c4`` 832 / 16, ``c5`` 1024 / 32.

    ``pretrained``: False (torchvision's truncated-normal init), True (``GoogLeNet_Weights.IMAGENET1K_V1``
    from the torch hub cache; set ``transform_input=True`` with it) or a path to a state dict.
    ``frozen_stages``: 0 trains everything, k freezes the stem and stages 1..k.
    ``freeze_bn``: every BatchNorm becomes ``FrozenBatchNorm2d``.
    """
    weights = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1
    network = torchvision.models.GoogLeNet(aux_logits=False, transform_input=False, init_weights=True)
    model = GoogLeNetBackbone(network, out_features=out_features, transform_input=transform_input)
    if pretrained is True and not transform_input:
        logger.warning("googlenet: torchvision's ImageNet weights expect transform_input=true (inputs in [-1, 1])")
    return model.finish_setup(
        pretrained=pretrained,
        imagenet_weights=lambda: torchvision_imagenet_weights(weights, arch="googlenet"),
        frozen_stages=frozen_stages,
        freeze_bn=freeze_bn,
    )
