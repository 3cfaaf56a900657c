"""Convolution → BatchNorm → activation, the block backbones, necks and heads are made of.

``torchvision.ops.Conv2dNormActivation`` builds it; :func:`conv_bn_act` hands back its layers as a
list so that a caller splices them into its own ``nn.Sequential``. That keeps the state-dict names
flat (``extras.0.1.running_mean``, not ``extras.0.0.1.running_mean``): trained checkpoints refer
to them, so a module built from this block keeps loading the checkpoints written before it was.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn
from torchvision.ops import Conv2dNormActivation


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    padding: int | None = None,
    dilation: int = 1,
    groups: int = 1,
    batch_norm: bool = True,
    activation: Callable[..., nn.Module] = nn.ReLU,
) -> list[nn.Module]:
    """``[Conv2d, BatchNorm2d, activation]`` (without ``batch_norm``: ``[Conv2d, activation]``).

    The convolution has a bias only without BatchNorm (BN's shift makes it redundant).
    ``padding`` None keeps the size at stride 1 (``(kernel_size − 1) // 2 · dilation``).
    ``activation`` is called with ``inplace=True``.
    """
    block = Conv2dNormActivation(
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        groups,
        norm_layer=nn.BatchNorm2d if batch_norm else None,
        activation_layer=activation,
        dilation=dilation,
        inplace=True,
    )
    return list(block)


# Darknet's activation: LeakyReLU with slope 0.1 (PyTorch's default slope is 0.01).
darknet_leaky_relu = partial(nn.LeakyReLU, 0.1)


class ConvBNLeaky(nn.Sequential):
    """Darknet's unit (YOLO necks and heads): convolution (no bias), BatchNorm, LeakyReLU(0.1);
    'same' padding. ``[N, in_channels, H, W] → [N, out_channels, ⌈H / stride⌉, ⌈W / stride⌉]``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__(
            *conv_bn_act(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                activation=darknet_leaky_relu,
            )
        )
