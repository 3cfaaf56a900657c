"""The pyramid levels a neck works on: which backbone outputs it reads, and what its own outputs
are called (``p<k>`` for stride 2^k, as in the FPN paper: p3 at stride 8, p5 at stride 32)."""

from __future__ import annotations

from collections.abc import Sequence

from detkit.structures import FeatureInfo


def input_levels(
    feature_info: Sequence[FeatureInfo], in_features: Sequence[str] | None, owner: str
) -> tuple[list[str], list[FeatureInfo]]:
    """The names asked for (``in_features``; every backbone output when None) as given, and their
    outputs ordered shallow to deep. ``owner`` starts the error message of a name the backbone lacks."""
    by_name = {info.name: info for info in feature_info}
    names = list(in_features) if in_features is not None else [info.name for info in feature_info]
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f"{owner}: backbone has no output {missing}; it has {sorted(by_name)} (set backbone.out_features)"
        )
    return names, sorted((by_name[n] for n in names), key=lambda info: info.stride)


def pyramid_level(stride: int) -> int:
    """k of the level at ``stride`` = 2^k."""
    return int(stride).bit_length() - 1
