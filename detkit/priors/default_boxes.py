"""SSD default boxes (Liu et al., 2016): a few boxes of one scale and several aspect ratios at every
cell of every source map.

Level k of m has scale ``s_k`` (a fraction of the image side); its boxes are

    ratio 1 at scale s_k,   ratio 1 at scale √(s_k · s_{k+1}),   and for every r in the level's
    ratios both r and 1/r at scale s_k, with width s·√r and height s/√r (r = width / height).

With the paper's per-level ratios ``[[2], [2, 3], [2, 3], [2, 3], [2], [2]]`` that is 4, 6, 6, 6,
4, 4 boxes per cell, and on SSD300's 38, 19, 10, 5, 3, 1 maps 8732 boxes in all.

Scales: linear from ``min_scale`` to ``max_scale`` over the levels (0.2 … 0.9); with
``first_scale`` (0.1 for SSD300's conv4_3) the first level gets it and the others share the
linear range. The last level's extra box uses one step beyond ``max_scale`` (1.05 for SSD300, as
the reference Caffe model). Explicit ``scales`` (m + 1 values) replace the rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

# SSD300's per-level aspect ratios (besides 1): 4 boxes on conv4_3, conv10_2, conv11_2, 6 elsewhere.
SSD300_ASPECT_RATIOS: tuple[tuple[float, ...], ...] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))


def ssd_scales(
    num_levels: int, *, min_scale: float = 0.2, max_scale: float = 0.9, first_scale: float | None = None
) -> list[float]:
    """The ``num_levels + 1`` scales s_0 … s_m (fractions of the image side) of the SSD rule; the
    last one only sizes the extra √(s_{m-1} s_m) box of the last level."""
    if num_levels < 1:
        raise ValueError(f"SSD needs at least one source level, got {num_levels}")
    if not 0 < min_scale <= max_scale:
        raise ValueError(f"SSD scales need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
    if first_scale is not None and not 0 < first_scale:
        raise ValueError(f"first_scale must be positive, got {first_scale}")
    head = [float(first_scale)] if first_scale is not None else []
    linear_levels = num_levels - len(head)
    if linear_levels <= 1:
        # One linear level spans the whole range: s_min, then s_max for its extra box.
        return head + [min_scale, max_scale][: linear_levels + 1]
    step = (max_scale - min_scale) / (linear_levels - 1)
    return head + [min_scale + step * k for k in range(linear_levels + 1)]


class DefaultBoxGenerator(nn.Module):
    """Default boxes for all source maps of a batch, generated from the maps' actual sizes.

    ``aspect_ratios[k]`` lists level k's ratios other than 1 (each r adds r and 1/r). Box sizes
    are fractions of the image extent, so on a non-square input a ratio-1 box is as wide, relative
    to the image width, as it is high relative to the image height (SSD warps images to a square).
    Cell centres are ``((x + 0.5)·W/f_w, (y + 0.5)·H/f_h)``. Boxes are cached per map sizes,
    extent and device.
    """

    def __init__(
        self,
        aspect_ratios: Sequence[Sequence[float]] = SSD300_ASPECT_RATIOS,
        *,
        min_scale: float = 0.2,
        max_scale: float = 0.9,
        first_scale: float | None = 0.1,
        scales: Sequence[float] | None = None,
        clip: bool = False,
    ) -> None:
        super().__init__()
        self.aspect_ratios = [tuple(float(r) for r in level) for level in aspect_ratios]
        for level, ratios in enumerate(self.aspect_ratios):
            if any(not (math.isfinite(r) and r > 0) for r in ratios):
                raise ValueError(f"level {level}: aspect ratios must be positive numbers, got {list(ratios)}")
        num_levels = len(self.aspect_ratios)
        if scales is None:
            scales = ssd_scales(num_levels, min_scale=min_scale, max_scale=max_scale, first_scale=first_scale)
        elif len(scales) != num_levels + 1:
            raise ValueError(
                f"scales needs {num_levels + 1} values for {num_levels} levels (the last sizes the "
                f"extra box of the last level), got {len(scales)}"
            )
        self.scales = [float(s) for s in scales]
        self.clip = clip
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_boxes_per_location(self) -> list[int]:
        return [2 + 2 * len(ratios) for ratios in self.aspect_ratios]

    def cell_boxes(self, level: int) -> Tensor:
        """Level ``level``'s boxes as ``Tensor[B, 2]`` (width, height) fractions of the image,
        in the order: scale s_k, scale √(s_k s_{k+1}), then (r, 1/r) for each ratio r."""
        scale, next_scale = self.scales[level], self.scales[level + 1]
        sizes = [(scale, scale), (math.sqrt(scale * next_scale),) * 2]
        for ratio in self.aspect_ratios[level]:
            root = math.sqrt(ratio)
            sizes += [(scale * root, scale / root), (scale / root, scale * root)]
        return torch.tensor(sizes, dtype=torch.float32)

    def forward(
        self,
        feature_sizes: Sequence[tuple[int, int]],
        image_size: tuple[int, int],
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``feature_sizes``: (height, width) of each source map, shallow to deep;
        ``image_size``: (height, width) in pixels → ``Tensor[A, 4] xyxy`` in pixels, ordered by
        level, then (y, x, box) inside a level to match a head's ``[N, B·k, H, W]`` outputs."""
        feature_sizes = tuple((int(h), int(w)) for h, w in feature_sizes)
        if len(feature_sizes) != len(self.aspect_ratios):
            raise ValueError(
                f"default boxes are configured for {len(self.aspect_ratios)} levels (one aspect-ratio "
                f"list each) but got {len(feature_sizes)} feature maps"
            )
        image_height, image_width = float(image_size[0]), float(image_size[1])
        key = (feature_sizes, image_height, image_width, str(device))
        if key not in self._cache:
            levels = [
                self._level_boxes(level, height, width, image_height, image_width)
                for level, (height, width) in enumerate(feature_sizes)
            ]
            self._cache[key] = torch.cat(levels).to(device)
        return self._cache[key]

    def _level_boxes(
        self, level: int, height: int, width: int, image_height: float, image_width: float
    ) -> Tensor:
        step_y, step_x = image_height / height, image_width / width
        ys = (torch.arange(height, dtype=torch.float64) + 0.5) * step_y
        xs = (torch.arange(width, dtype=torch.float64) + 0.5) * step_x
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 1, 2)
        half = (
            self.cell_boxes(level).double()
            * torch.tensor([image_width, image_height], dtype=torch.float64)
            / 2
        )
        boxes = torch.cat((centres - half, centres + half), dim=-1).reshape(-1, 4)
        if self.clip:
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image_width)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image_height)
        return boxes.float()
