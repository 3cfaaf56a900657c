"""Fast R-CNN's RoI head on a feature pyramid (Faster R-CNN with FPN, Lin et al., 2017, section 4.2).

The head is ``detkit.heads.fast_rcnn.FastRCNNHead`` (two fully connected layers, a (C+1)-way
classifier and class-specific box regression, its sampling, losses and postprocessing); only the
pooling differs: each RoI is RoI-aligned from the pyramid level its size selects
(``detkit.ops.roi_levels``: k = ⌊4 + log2(√(w·h)/224)⌋, clamped to the levels).

Shapes: N images, R RoIs, L levels; ``features`` is the neck's ``dict[str, Tensor[N, C, H_l, W_l]]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from detkit.heads.fast_rcnn import FastRCNNHead
from detkit.ops.roi_levels import pool_rois_by_level
from detkit.structures import FeatureInfo


class FPNRoIHead(FastRCNNHead):
    """``FastRCNNHead`` whose ``features`` are the pyramid's levels (``feature_info``: all of one
    width); ``in_features`` the levels RoIs are pooled from (default: all; the paper pools from p2-p5
    while its RPN also uses p6). ``canonical_size``/``canonical_level``: the level-assignment rule's 224 and k0 = 4.
    The other keyword arguments are ``FastRCNNHead``'s (its ``pooler`` is always RoI align here)."""

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        num_classes: int,
        in_features: Sequence[str] | None = None,
        canonical_size: float = 224.0,
        canonical_level: int = 4,
        **head_kwargs,
    ) -> None:
        by_name = {info.name: info for info in feature_info}
        names = list(in_features) if in_features is not None else list(by_name)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"FPNRoIHead: the neck has no level {missing}; it has {sorted(by_name)}")
        levels = sorted((by_name[n] for n in names), key=lambda info: info.stride)
        widths = {info.channels for info in levels}
        if len(widths) != 1:
            raise ValueError(f"FPNRoIHead: all levels must have one width (pooled features are shared); got {levels}")
        super().__init__(
            in_channels=widths.pop(),
            stride=levels[0].stride,
            num_classes=num_classes,
            pooler="roi_align",
            **head_kwargs,
        )
        self.in_features = [info.name for info in levels]
        self.strides = [info.stride for info in levels]
        self.canonical_size = canonical_size
        self.canonical_level = canonical_level

    def _head(self, features: dict[str, Tensor], rois: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        pooled = pool_rois_by_level(
            [features[name] for name in self.in_features],
            self.strides,
            rois,
            output_size=self.pool_size,
            canonical_size=self.canonical_size,
            canonical_level=self.canonical_level,
        )
        return self.predictor(self.box_head(pooled))
