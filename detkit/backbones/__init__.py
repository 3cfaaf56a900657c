"""Backbone registry: VGG-16, ResNet-18 and MobileNet v1 (the ones every detector has an experiment
on), AlexNet, ZFNet, GoogLeNet, a LeNet-style toy and any torchvision classifier, all returning
``c3``/``c4``/``c5`` features.

``build_backbone("resnet18", out_features=("c3", "c4"))`` or, from a config, the factory itself
(``_target_: detkit.backbones.resnet.resnet18``). See ``detkit.backbones.base`` for the contract.
"""

from __future__ import annotations

from typing import Any

from detkit.registry import Registry

# The backbones of the card: every detector has a *_shapes experiment on each of them.
CORE_BACKBONES = ("vgg16", "resnet18", "mobilenet_v1")

# Defined before the imports below: each backbone module registers itself into it on import.
BACKBONES = Registry("backbone")

from detkit.backbones import (  # noqa: E402, F401  (registration)
    alexnet,
    efficientnet_lite,
    googlenet,
    lenet,
    mobilenet,
    resnet,
    torchvision_any,
    vgg,
)
from detkit.backbones.base import Backbone  # noqa: E402


def build_backbone(name: str, **kwargs: Any) -> Backbone:
    """Build the backbone registered as ``name`` with the factory's keyword arguments."""
    return BACKBONES.build(name, **kwargs)


__all__ = ["BACKBONES", "CORE_BACKBONES", "Backbone", "build_backbone"]
