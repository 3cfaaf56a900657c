"""Grid priors for the YOLO heads: the cells of a feature map and, for YOLOv3, the anchor shapes
attached to every cell of every level.

Flattened order of YOLOv3 priors: level (shallow → deep), then row ``y``, column ``x``, then
anchor ``a``. That is the order a head gets from ``[N, A·k, H, W] → [N, H, W, A, k]`` per level,
concatenated over levels, so prior ``p`` of the head's output is prior ``p`` here.

Shapes: L levels, A anchors per level, P = Σ_l H_l·W_l·A priors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def grid_cells(height: int, width: int, *, device: torch.device | str | None = None) -> Tensor:
    """Column and row index ``(x, y)`` of every cell of a ``height × width`` map:
    ``Tensor[H·W, 2]`` float32, row-major (cell ``y·W + x``)."""
    ys = torch.arange(height, device=device, dtype=torch.float32)
    xs = torch.arange(width, device=device, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 2)


@dataclass(frozen=True)
class GridPriors:
    """All priors of a multi-level YOLO head, flattened (see the module docstring for the order).

    ``cells: Tensor[P, 2]`` the (x, y) cell index of each prior on its level;
    ``strides: Tensor[P]`` its level's stride in pixels; ``anchors: Tensor[P, 2]`` its anchor's
    (w, h) in pixels; ``level_starts``: first prior index of each level, plus P at the end.
    """

    cells: Tensor
    strides: Tensor
    anchors: Tensor
    level_starts: tuple[int, ...]


class AnchorGrid(nn.Module):
    """YOLOv3 priors: ``anchors`` are L groups of A (w, h) pairs in input pixels, one group per
    level of stride ``strides[l]`` (shallow → deep, so small anchors go with small strides)."""

    def __init__(self, anchors: Sequence[Sequence[Sequence[float]]], strides: Sequence[int]) -> None:
        super().__init__()
        anchor_tensor = torch.as_tensor(anchors, dtype=torch.float32)
        if anchor_tensor.dim() != 3 or anchor_tensor.shape[-1] != 2:
            raise ValueError(
                f"anchors must be L groups of A (w, h) pairs (shape [L, A, 2]), got shape {tuple(anchor_tensor.shape)}"
            )
        if len(strides) != anchor_tensor.shape[0]:
            raise ValueError(
                f"{anchor_tensor.shape[0]} anchor groups for {len(strides)} feature levels (strides {list(strides)})"
            )
        if not bool((anchor_tensor > 0).all()):
            raise ValueError(f"anchor widths and heights must be positive, got {anchor_tensor.tolist()}")
        self.register_buffer("anchors", anchor_tensor, persistent=False)
        self.strides = tuple(int(s) for s in strides)
        self._cache: dict[tuple, GridPriors] = {}

    @property
    def num_levels(self) -> int:
        return self.anchors.shape[0]

    @property
    def num_anchors_per_level(self) -> int:
        return self.anchors.shape[1]

    def forward(self, feature_sizes: Sequence[tuple[int, int]]) -> GridPriors:
        """``feature_sizes``: (H_l, W_l) of each level → the flattened ``GridPriors``."""
        if len(feature_sizes) != self.num_levels:
            raise ValueError(f"got {len(feature_sizes)} feature maps for {self.num_levels} anchor levels")
        device = self.anchors.device
        key = (tuple(tuple(int(v) for v in s) for s in feature_sizes), str(device))
        if key not in self._cache:
            num_anchors = self.num_anchors_per_level
            cells, strides, anchors, starts = [], [], [], [0]
            for level, (height, width) in enumerate(feature_sizes):
                level_cells = grid_cells(height, width, device=device)
                cells.append(level_cells.repeat_interleave(num_anchors, dim=0))
                anchors.append(self.anchors[level].repeat(height * width, 1))
                strides.append(torch.full((height * width * num_anchors,), float(self.strides[level]), device=device))
                starts.append(starts[-1] + height * width * num_anchors)
            self._cache[key] = GridPriors(torch.cat(cells), torch.cat(strides), torch.cat(anchors), tuple(starts))
        return self._cache[key]
