"""Region proposal network over a feature pyramid (FPN, Lin et al., 2017, section 4.1).

One RPN head (3×3 convolution, then 1×1 objectness and deltas) slides over every pyramid level
with shared weights; each level has its own anchors (the paper: one size per level, 32² on p2 to
512² on p6, times 3 aspect ratios). The levels' outputs are concatenated, after which matching,
sampling, the loss, top-k, decoding and NMS are exactly the single-map RPN's
(``detkit.proposals.rpn.RPN``): only where the outputs and anchors come from differs.

Shapes: N images, L levels of H_l × W_l cells, A anchors per cell (the same on every level: the
head is shared), P = Σ_l H_l·W_l·A anchors.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.priors.anchors import AnchorGenerator
from detkit.proposals.rpn import RPN
from detkit.structures import FeatureInfo


class FPNRPN(RPN):
    """``forward(features: dict[str, Tensor], image_sizes, targets)`` as ``RPN.forward``, over the
    levels of ``feature_info`` (all of one width, as an FPN gives). ``anchor_sizes``: one list of
    sizes per level, shallow to deep, all of one length; the other arguments are ``RPN``'s."""

    def __init__(
        self,
        *,
        feature_info: Sequence[FeatureInfo],
        anchor_sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        **rpn_kwargs,
    ) -> None:
        levels = sorted(feature_info, key=lambda info: info.stride)
        widths = {info.channels for info in levels}
        if len(widths) != 1:
            raise ValueError(f"FPNRPN: its head is shared by all levels, which must have one width; got {levels}")
        sizes = [list(s) for s in anchor_sizes]
        if len(sizes) != len(levels) or len({len(s) for s in sizes}) != 1:
            raise ValueError(
                f"FPNRPN: anchor_sizes needs one list per level ({[i.name for i in levels]}), all of one length; "
                f"got {sizes}"
            )
        super().__init__(
            in_channels=widths.pop(),
            stride=levels[0].stride,
            anchor_sizes=sizes[0],
            aspect_ratios=aspect_ratios,
            **rpn_kwargs,
        )
        # The single-map generator the base built is replaced by one per level.
        del self.anchor_generator
        self.in_features = [info.name for info in levels]
        self.anchor_generators = nn.ModuleList(
            AnchorGenerator(level_sizes, aspect_ratios, info.stride)
            for level_sizes, info in zip(sizes, levels, strict=True)
        )

    def _outputs(self, features: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:  # type: ignore[override]
        """→ objectness logits ``Tensor[N, P]``, deltas ``Tensor[N, P, 4]`` and anchors
        ``Tensor[P, 4] xyxy``, level after level, each in (y, x, anchor) order."""
        objectness, deltas, anchors = [], [], []
        for name, generator in zip(self.in_features, self.anchor_generators, strict=True):
            level_objectness, level_deltas = self._level_outputs(features[name])
            objectness.append(level_objectness)
            deltas.append(level_deltas)
            anchors.append(generator(*features[name].shape[-2:]))
        return torch.cat(objectness, dim=1), torch.cat(deltas, dim=1), torch.cat(anchors)

    def _level_outputs(self, features: Tensor) -> tuple[Tensor, Tensor]:
        # The base's head applied to one level: [N, A·k, H, W] → [N, H·W·A(, 4)].
        num_images = features.shape[0]
        hidden = self.conv(features)
        objectness = self.objectness(hidden).permute(0, 2, 3, 1).reshape(num_images, -1)
        deltas = self.deltas(hidden).permute(0, 2, 3, 1).reshape(num_images, -1, 4)
        return objectness, deltas
