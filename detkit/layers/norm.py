"""Normalisation layers chosen by name, for necks and heads that offer the choice."""

from __future__ import annotations

from torch import nn

NORM_KINDS = ("none", "bn", "gn")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"bn"`` BatchNorm; ``"gn"`` GroupNorm with 32 groups (fewer when ``channels`` is not a
    multiple of 32): it does not depend on the batch, the usual choice for detection heads trained
    from scratch or with small batches; ``"none"`` identity."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORM_KINDS)}")
