"""A tower of 3×3 convolutions that every pyramid level shares (RetinaNet's subnets, the TF Object
Detection API's weight-shared SSD predictor): one set of convolution weights sees the objects of
every size, which a small dataset needs; with BatchNorm each level keeps its own statistics."""

from __future__ import annotations

from torch import Tensor, nn

from detkit.layers.norm import norm_layer


def shared_conv_tower(channels: int, num_convs: int, norm: str, depthwise: bool = False) -> nn.Sequential:
    """conv, norm, ReLU per layer; with ``"bn"`` the norm slots stay empty (Identity): the head
    applies one BatchNorm per pyramid level there (``per_level_norms``). ``depthwise``: each conv
    is a 3×3 depthwise then a 1×1 pointwise convolution (the mobile "FPNLite" heads), about a
    ninth of a full 3×3 convolution's arithmetic at 96 channels."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        slot = nn.Identity() if norm == "bn" else norm_layer(norm, channels)
        if depthwise:
            conv: nn.Module = nn.Sequential(
                nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                nn.Conv2d(channels, channels, 1),
            )
        else:
            conv = nn.Conv2d(channels, channels, 3, padding=1)
        layers += [conv, slot, nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def per_level_norms(channels: int, num_convs: int, num_levels: int) -> nn.ModuleList:
    """``[level][layer]`` BatchNorms for a tower whose convolutions all levels share: each level keeps
    its own statistics and affine (EfficientDet's per-level BN), as p3's activations differ from p5's
    and one set of running statistics would fit neither at test time."""
    return nn.ModuleList(
        nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(num_convs)) for _ in range(num_levels)
    )


def run_shared_tower(tower: nn.Sequential, level_norms: nn.ModuleList | None, x: Tensor, level: int) -> Tensor:
    """``tower`` on one level's map ``x``; ``level_norms`` (or None) fills the norm slots."""
    if level_norms is None:
        return tower(x)
    for index, layer in enumerate(tower):
        # Layers come in (conv, norm slot, ReLU) triples: the slot takes this level's BatchNorm.
        x = level_norms[level][index // 3](x) if index % 3 == 1 else layer(x)
    return x
