"""The backbone contract every detector relies on, and what all backbones share.

A backbone maps ``images: Tensor[N, 3, H, W]`` to ``dict[str, Tensor]`` with uniform names, so a
detector never needs to know which network it runs on:

    ``c3``  stride 8     ``c4``  stride 16     ``c5``  stride 32

Each output has spatial size ``ceil(H / stride) x ceil(W / stride)`` (exactly ``H / stride`` when
the input divides). Every backbone is a stem followed by four stages; stage ``i`` runs at stride
``2 ** (i + 1)``, so ``c3``, ``c4`` and ``c5`` are the outputs of stages 2, 3 and 4. A backbone
builds, and runs, only the stages up to the deepest output asked for in ``out_features``.

``feature_info`` lists the outputs in the order the dict holds them (shallow to deep), with their
channel counts and strides; heads and necks size themselves from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from detkit.backbones.pretrained import load_matching, read_state_dict
from detkit.structures import FeatureInfo

FEATURE_STAGES: dict[str, int] = {"c3": 2, "c4": 3, "c5": 4}
FEATURE_STRIDES: dict[str, int] = {"c3": 8, "c4": 16, "c5": 32}
NUM_STAGES = 4

# The input normalisation of torchvision's ImageNet weights, on 0..1 pixels; the default of every
# backbone, and what a detector applies unless its backbone declares another (``pixel_mean``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# What a factory's ``pretrained`` accepts: False/None (random init), True (ImageNet weights) or a file.
Pretrained = bool | str | os.PathLike | None


def parse_out_features(out_features: str | Sequence[str]) -> tuple[str, ...]:
    """Validate ``out_features`` and return it ordered shallow to deep (``c3`` before ``c5``)."""
    names = (out_features,) if isinstance(out_features, str) else tuple(str(n) for n in out_features)
    known = ", ".join(FEATURE_STAGES)
    if not names:
        raise ValueError(f"out_features is empty; choose one or more of {known}")
    unknown = [n for n in names if n not in FEATURE_STAGES]
    if unknown:
        raise ValueError(f"unknown backbone output(s) {unknown} in out_features; choose from {known}")
    if len(set(names)) != len(names):
        raise ValueError(f"out_features {list(names)} names an output twice")
    return tuple(sorted(names, key=FEATURE_STAGES.__getitem__))


def freeze_batchnorm(root: nn.Module, select: Callable[[nn.Module], bool] = lambda _: True) -> int:
    """Replace the BatchNorm layers of ``root`` chosen by ``select`` with ``FrozenBatchNorm2d``.

    The frozen layer keeps the running statistics and affine parameters as constant buffers: it
    neither updates statistics in ``train()`` mode nor receives gradients, which is what small-batch
    fine-tuning needs. Returns how many layers were replaced.
    """
    replaced = 0
    for parent in list(root.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d | nn.SyncBatchNorm) and select(child):
                setattr(parent, child_name, _to_frozen(child))
                replaced += 1
    return replaced


def _to_frozen(batchnorm: nn.BatchNorm2d | nn.SyncBatchNorm) -> FrozenBatchNorm2d:
    if not batchnorm.track_running_stats:
        raise ValueError("cannot freeze a BatchNorm layer that keeps no running statistics")
    frozen = FrozenBatchNorm2d(batchnorm.num_features, eps=batchnorm.eps)
    with torch.no_grad():
        if batchnorm.affine:
            frozen.weight.copy_(batchnorm.weight)
            frozen.bias.copy_(batchnorm.bias)
        frozen.running_mean.copy_(batchnorm.running_mean)
        frozen.running_var.copy_(batchnorm.running_var)
    return frozen.to(batchnorm.running_mean.device)


def init_conv_weights(modules: Iterable[nn.Module]) -> None:
    """He (Kaiming) init for convolutions, identity for BatchNorm: the usual start from scratch."""
    for module in modules:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class Backbone(nn.Module):
    """Base of all backbones: output selection, ``feature_info``, pretrained loading, freezing.

    Subclasses build their layers (only up to stage ``self.depth``), implement ``forward`` and
    ``stage_modules`` and call ``finish_setup`` at the end of their factory.
    """

    feature_info: list[FeatureInfo]
    # The input normalisation the weights expect, ``(pixel - mean) / std`` on 0..1 pixels; detectors
    # take it from their backbone.
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    pixel_std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, *, out_features: str | Sequence[str], channels: dict[str, int]) -> None:
        super().__init__()
        self.out_features = parse_out_features(out_features)
        self.feature_info = [FeatureInfo(n, channels[n], FEATURE_STRIDES[n]) for n in self.out_features]
        # The deepest stage that must exist; later stages are neither built nor run.
        self.depth = FEATURE_STAGES[self.out_features[-1]]

    def forward(self, images: Tensor) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def stage_modules(self) -> list[list[nn.Module]]:
        """Modules of the stem (index 0) and of each built stage (1..depth), for freezing."""
        raise NotImplementedError

    def is_unbuilt_key(self, key: str) -> bool:
        """Whether a full-network state-dict key belongs to a stage this instance did not build."""
        return False

    # Setup shared by all factories -------------------------------------------------------------

    def finish_setup(
        self,
        *,
        pretrained: Pretrained,
        imagenet_weights: Callable[[], tuple[dict[str, Tensor], str]],
        frozen_stages: int,
        freeze_bn: bool,
        rename: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    ) -> Backbone:
        """Load weights, then freeze; returns ``self`` so factories can end with it.

        ``imagenet_weights`` is called only for ``pretrained=True`` and returns the state dict and
        where it came from (for error messages). ``rename`` maps a weights file given as a path
        from its publisher's names to this module's. Freezing comes after loading so
        frozen BatchNorm layers keep the loaded statistics.
        """
        if not isinstance(frozen_stages, int) or not 0 <= frozen_stages <= NUM_STAGES:
            raise ValueError(f"frozen_stages must be an int in 0..{NUM_STAGES}, got {frozen_stages!r}")
        self.load_pretrained(pretrained, imagenet_weights=imagenet_weights, rename=rename)
        self.freeze_stages(frozen_stages)
        if freeze_bn:
            freeze_batchnorm(self)
        return self

    def load_pretrained(
        self,
        pretrained: Pretrained,
        *,
        imagenet_weights: Callable[[], tuple[dict[str, Tensor], str]],
        rename: Callable[[dict[str, Tensor]], dict[str, Tensor]] | None = None,
    ) -> None:
        if pretrained is None or pretrained is False:
            return
        if pretrained is True:
            state, origin = imagenet_weights()
        elif isinstance(pretrained, str | os.PathLike):
            path = Path(pretrained).expanduser()
            state, origin = read_state_dict(path), str(path)
            if rename is not None:
                state = rename(state)
        else:
            raise TypeError(f"pretrained must be a bool or a file path, got {type(pretrained).__name__}")
        load_matching(self, state, origin=origin, is_unbuilt_key=self.is_unbuilt_key)

    def freeze_stages(self, frozen_stages: int) -> None:
        """Freeze the stem and stages 1..``frozen_stages`` (0 freezes nothing).

        Frozen parameters get ``requires_grad=False``; the BatchNorm layers inside become
        ``FrozenBatchNorm2d`` so their statistics do not drift in ``train()`` mode either.
        """
        if frozen_stages == 0:
            return
        frozen = [m for group in self.stage_modules()[: frozen_stages + 1] for m in group]
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)
        frozen_ids = {id(sub) for module in frozen for sub in module.modules()}
        freeze_batchnorm(self, lambda bn: id(bn) in frozen_ids)


# The two layouts several backbones share, as bases: what is left to a subclass is building its
# layers; running them, grouping them into stages for freezing and telling which weights-file keys
# belong to stages it did not build are the same.


class SequentialFeaturesBackbone(Backbone):
    """A backbone whose layers are one ``features`` Sequential indexed like the full network's
    (AlexNet, ZFNet, the LeNet-style toy, VGG-16), so ``features.N.*`` keys of its weights load as
    they are. A subclass builds the layers up to the end of stage ``depth`` and passes them to
    ``set_features``; each output is the last layer of its stage (c3 ends stage 2, c4 stage 3,
    c5 stage 4)."""

    features: nn.Sequential

    def set_features(self, features: nn.Sequential, stage_ends: Sequence[int]) -> None:
        """``stage_ends``: exclusive end, in the full network's ``features``, of the stem and of
        stages 1..4."""
        self.features = features
        self._full_length = stage_ends[-1]
        self._ends = list(stage_ends[: self.depth + 1])
        self._outputs = {stage_ends[FEATURE_STAGES[name]] - 1: name for name in self.out_features}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = images
        features: dict[str, Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self._outputs:
                features[self._outputs[index]] = x
        return features

    def stage_modules(self) -> list[list[nn.Module]]:
        starts = [0] + self._ends[:-1]
        return [list(self.features[start:end]) for start, end in zip(starts, self._ends, strict=True)]

    def is_unbuilt_key(self, key: str) -> bool:
        parts = key.split(".")
        return (
            len(parts) > 2
            and parts[0] == "features"
            and parts[1].isdigit()
            and len(self.features) <= int(parts[1]) < self._full_length
        )


class StemBlocksBackbone(Backbone):
    """A ``stem`` followed by one sequence of ``blocks`` (MobileNet v1, EfficientNet-Lite). A
    subclass builds the stem and the blocks up to the end of stage ``depth`` and passes them to
    ``set_stem_and_blocks``; each output is the last block of its stage."""

    stem: nn.Module
    blocks: nn.Sequential

    def set_stem_and_blocks(self, stem: nn.Module, blocks: nn.Sequential, stage_ends: Sequence[int]) -> None:
        """``stage_ends``: exclusive end, in the full network's ``blocks``, of the stem and of
        stages 1..4 (the stem's own end counts the blocks that belong to it)."""
        self.stem = stem
        self.blocks = blocks
        self._stage_ends = tuple(stage_ends)
        self._outputs = {stage_ends[FEATURE_STAGES[name]] - 1: name for name in self.out_features}

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        x = self.stem(images)
        features: dict[str, Tensor] = {}
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self._outputs:
                features[self._outputs[index]] = x
        return features

    def stage_modules(self) -> list[list[nn.Module]]:
        """The stem with the blocks before the stem's end, then each built stage's blocks."""
        ends = self._stage_ends[: self.depth + 1]
        starts = (0,) + ends[:-1]
        groups = [list(self.blocks[start:end]) for start, end in zip(starts, ends, strict=True)]
        groups[0].insert(0, self.stem)
        return groups

    def is_unbuilt_key(self, key: str) -> bool:
        """Whether ``key`` belongs to a block ``blocks.<i>`` of the full network that was not built."""
        parts = key.split(".")
        return (
            len(parts) > 2
            and parts[0] == "blocks"
            and parts[1].isdigit()
            and len(self.blocks) <= int(parts[1]) < self._stage_ends[-1]
        )
