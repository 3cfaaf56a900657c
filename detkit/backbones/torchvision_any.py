"""Any torchvision classifier as a backbone, by name: ``build_backbone("torchvision", arch="efficientnet_b0")``.

The classifier is built with ``torchvision.models.get_model(name, weights=None)``; its trunk is
found by walking its children in order (plain ``nn.Sequential`` containers are opened, the
classifier head, pooling and auxiliary classifiers are dropped) and the stride of every module's
output is measured once with a probe image. ``c3``/``c4``/``c5`` are the outputs of the last
module at stride 8, 16 and 32. Modules are grouped into the stem (stride <= 2) and stages 1..4
(stride 4, 8, 16, 32) for ``frozen_stages``; modules past the deepest requested output are removed.

This works for the convolutional families whose ``forward`` runs their children in order:
ResNet/ResNeXt/Wide ResNet, VGG, AlexNet, MobileNet v2/v3, EfficientNet v1/v2, RegNet, ConvNeXt,
DenseNet, ShuffleNet v2, MNASNet, SqueezeNet, GoogLeNet. Vision transformers and Swin (token or
channels-last outputs), and Inception v3 (unpadded convolutions: its maps are not ``H / stride``),
are refused at build time with the module that broke the rule.

The input is padded right/bottom to a multiple of 32 and every output cropped to
``ceil(H / stride) x ceil(W / stride)``, so the sizes follow the backbone contract whatever the
network's own rounding. Modules keep torchvision's names: its ImageNet state dicts load as they are.
``pretrained=True`` reads the weights from the torch hub cache only (see weights/README.md); it
never downloads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
import torchvision.models as tv_models
from torch import Tensor, nn

from detkit.backbones import BACKBONES
from detkit.backbones.base import FEATURE_STRIDES, Backbone, Pretrained

# Top-level children that belong to the classifier, not to the trunk.
_HEAD_NAMES = frozenset(
    {"avgpool", "fc", "classifier", "head", "heads", "dropout", "flatten", "aux1", "aux2", "AuxLogits"}
)
_PROBE_SIZE = 128
_MAX_STRIDE = 32


def _trunk_paths(module: nn.Module, prefix: str = "") -> list[str]:
    """Dotted paths of the trunk's leaf modules in execution order: plain Sequentials are opened
    (their forward is running their children in order), anything else is one leaf."""
    paths = []
    for name, child in module.named_children():
        if not prefix and name in _HEAD_NAMES:
            continue
        path = f"{prefix}{name}"
        if isinstance(child, nn.Sequential) and type(child).forward is nn.Sequential.forward and len(child):
            paths += _trunk_paths(child, path + ".")
        else:
            paths.append(path)
    return paths


@torch.no_grad()
def _measure(network: nn.Module, paths: list[str], name: str) -> tuple[list[int], list[int]]:
    """The output stride and channels of every module in ``paths`` (run in order on a probe image),
    up to the last stride-32 module. Raises ``ValueError`` naming the module that breaks the contract."""
    was_training = network.training
    network.eval()
    x = torch.zeros(1, 3, _PROBE_SIZE, _PROBE_SIZE)
    strides: list[int] = []
    channels: list[int] = []
    try:
        for path in paths:
            try:
                x = network.get_submodule(path)(x)
            except Exception as err:  # e.g. a transformer encoder handed a feature map
                raise ValueError(
                    f"torchvision model {name!r} cannot be a backbone: its module {path!r} fails on the "
                    f"previous module's output ({type(err).__name__}: {err})"
                ) from err
            if not isinstance(x, Tensor) or x.dim() != 4:
                raise ValueError(
                    f"torchvision model {name!r} cannot be a backbone: its module {path!r} does not output a "
                    f"Tensor[N, C, H, W] feature map (a transformer or another non-convolutional trunk?)"
                )
            height, width = x.shape[-2:]
            stride = _PROBE_SIZE // height if height else 0
            if height * stride != _PROBE_SIZE or width != height or stride & (stride - 1):
                raise ValueError(
                    f"torchvision model {name!r} cannot be a backbone: its module {path!r} turns a "
                    f"{_PROBE_SIZE}x{_PROBE_SIZE} input into a {height}x{width} map, not {_PROBE_SIZE}/stride "
                    f"(unpadded convolutions or channels-last outputs)"
                )
            if strides and stride < strides[-1]:
                raise ValueError(f"torchvision model {name!r}: module {path!r} upsamples; not a backbone trunk")
            if stride > _MAX_STRIDE:
                break
            strides.append(stride)
            channels.append(int(x.shape[1]))
    finally:
        network.train(was_training)
    missing = [s for s in FEATURE_STRIDES.values() if s not in strides]
    if missing:
        raise ValueError(f"torchvision model {name!r} has no module output at stride(s) {missing}")
    return strides, channels


def _stage_of(stride: int) -> int:
    return max(int(math.log2(stride)) - 1, 0)


class TorchvisionBackbone(Backbone):
    """The trunk of a torchvision classifier, read out at the last module of stride 8, 16 and 32.

    ``forward(images: Tensor[N, 3, H, W]) -> {"c3": [N, C3, ceil(H/8), ceil(W/8)], "c4": ..., "c5": ...}``
    restricted to ``out_features``; channels as measured at build time (see ``feature_info``).
    """

    def __init__(self, network: nn.Module, *, name: str, out_features: str | Sequence[str]) -> None:
        paths = _trunk_paths(network)
        strides, module_channels = _measure(network, paths, name)
        paths = paths[: len(strides)]
        last_at = {stride: index for index, stride in enumerate(strides)}
        channels = {n: module_channels[last_at[s]] for n, s in FEATURE_STRIDES.items()}
        super().__init__(out_features=out_features, channels=channels)
        self.name = name
        last = last_at[FEATURE_STRIDES[self.out_features[-1]]]
        self._paths = paths[: last + 1]
        self._stages = [_stage_of(s) for s in strides[: last + 1]]
        self._outputs = {last_at[FEATURE_STRIDES[n]]: n for n in self.out_features}
        self._frozen_stages = 0
        # Everything else (deeper stages, the head) is removed, trailing entries first, so the
        # kept modules keep torchvision's names (a Sequential renumbers only after a deletion).
        self.removed = [p for p in _trunk_paths(network) if p not in self._paths]
        self.removed += [n for n, _ in network.named_children() if n in _HEAD_NAMES]
        for path in reversed(self.removed):
            parent_path, _, leaf = path.rpartition(".")
            parent = network.get_submodule(parent_path) if parent_path else network
            del parent._modules[leaf]
        for child_name, child in network.named_children():
            self.add_module(child_name, child)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        height, width = images.shape[-2:]
        pad_h, pad_w = (-height) % _MAX_STRIDE, (-width) % _MAX_STRIDE
        x = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
        features: dict[str, Tensor] = {}
        for index, path in enumerate(self._paths):
            # Looked up on every call: freezing replaces BatchNorm modules in place.
            x = self.get_submodule(path)(x)
            if index in self._outputs:
                name = self._outputs[index]
                stride = FEATURE_STRIDES[name]
                features[name] = x[..., : -(-height // stride), : -(-width // stride)]
        return features

    def stage_modules(self) -> list[list[nn.Module]]:
        groups: list[list[nn.Module]] = [[] for _ in range(self.depth + 1)]
        for path, stage in zip(self._paths, self._stages, strict=True):
            groups[stage].append(self.get_submodule(path))
        return groups

    def freeze_stages(self, frozen_stages: int) -> None:
        super().freeze_stages(frozen_stages)
        self._frozen_stages = frozen_stages
        self.train(self.training)

    def train(self, mode: bool = True) -> TorchvisionBackbone:
        # Frozen stages stay in inference mode: no dropout or stochastic depth (EfficientNet,
        # ConvNeXt) inside layers that no longer learn.
        super().train(mode)
        if mode and self._frozen_stages:
            for group in self.stage_modules()[: self._frozen_stages + 1]:
                for module in group:
                    module.eval()
        return self

    def is_unbuilt_key(self, key: str) -> bool:
        return any(key.startswith(path + ".") for path in self.removed)


def _cached_imagenet_weights(name: str, weights: str | None) -> tuple[dict[str, Tensor], str]:
    """torchvision's weights ``weights`` (an enum member name; None: its DEFAULT) for ``name``, read
    from the torch hub cache; never downloads."""
    enum = tv_models.get_model_weights(name)
    try:
        chosen = enum.DEFAULT if weights is None else enum[weights]
    except KeyError:
        raise ValueError(
            f"torchvision has no weights {weights!r} for {name}; choose from {[w.name for w in enum]}"
        ) from None
    filename = Path(urlparse(chosen.url).path).name
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not cached.is_file():
        raise RuntimeError(
            f"ImageNet weights for {name} ({chosen}) are not in the torch hub cache: expected {cached}. "
            f"Copy {filename} (from {chosen.url}) there, or pass pretrained=/path/to/{filename}. "
            f"See weights/README.md."
        )
    state = torch.load(cached, map_location="cpu", weights_only=True)
    return state, f"torchvision's {name} {chosen} ({cached})"


@BACKBONES.register
def torchvision(
    *,
    arch: str = "mobilenet_v3_small",
    pretrained: Pretrained = False,
    weights: str | None = None,
    out_features: str | Sequence[str] = ("c4",),
    freeze_bn: bool = False,
    frozen_stages: int = 0,
) -> TorchvisionBackbone:
    """The torchvision classifier ``arch`` (any of ``torchvision.models.list_models(module=torchvision.models)``
    that is a convolutional trunk) as a backbone; channels per output in ``feature_info``.

    ``pretrained``: False (torchvision's init), True (the ImageNet weights ``weights``, an enum member
    name such as ``IMAGENET1K_V2``, None for the default, from the torch hub cache) or a path to a
    state dict. ``frozen_stages``: 0 trains everything, k freezes the stem and stages 1..k (and keeps
    them in inference mode). ``freeze_bn``: every BatchNorm becomes ``FrozenBatchNorm2d``.
    """
    classifiers = tv_models.list_models(module=tv_models)
    if arch not in classifiers:
        raise ValueError(f"unknown torchvision classifier {arch!r}; choose from {', '.join(classifiers)}")
    kwargs = {"aux_logits": False, "init_weights": True} if arch == "googlenet" else {}
    network = tv_models.get_model(arch, weights=None, **kwargs)
    model = TorchvisionBackbone(network, name=arch, out_features=out_features)
    return model.finish_setup(
        pretrained=pretrained,
        imagenet_weights=lambda: _cached_imagenet_weights(arch, weights),
        frozen_stages=frozen_stages,
        freeze_bn=freeze_bn,
    )
