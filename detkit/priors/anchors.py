"""Anchor boxes for region proposal networks: sizes × aspect ratios at every feature-map cell.

With 3 sizes and 3 ratios there are A = 9 anchors per location (Faster R-CNN).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class AnchorGenerator(nn.Module):
    """Anchors for one feature map of stride ``stride``.

    An anchor of size ``s`` and ratio ``r`` (height / width) has area ``s²``, width ``s/√r`` and
    height ``s·√r``; it is centred on the cell centre ``((x + offset)·stride, (y + offset)·stride)``.
    """

    def __init__(
        self,
        sizes: Sequence[float] = (128.0, 256.0, 512.0),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        stride: int = 16,
        offset: float = 0.5,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.offset = offset
        self.register_buffer("cell_anchors", self._cell_anchors(sizes, aspect_ratios), persistent=False)
        self._cache: dict[tuple, Tensor] = {}

    @property
    def num_anchors_per_location(self) -> int:
        return self.cell_anchors.shape[0]

    @staticmethod
    def _cell_anchors(sizes: Sequence[float], aspect_ratios: Sequence[float]) -> Tensor:
        """``Tensor[A, 4] xyxy`` centred at (0, 0), sizes outer and ratios inner."""
        size = torch.as_tensor(sizes, dtype=torch.float32)[:, None]
        ratio = torch.as_tensor(aspect_ratios, dtype=torch.float32)[None, :]
        widths = (size / ratio.sqrt()).reshape(-1)
        heights = (size * ratio.sqrt()).reshape(-1)
        return torch.stack((-widths, -heights, widths, heights), dim=1) / 2

    def forward(self, feature_height: int, feature_width: int) -> Tensor:
        """All anchors of a ``feature_height × feature_width`` map: ``Tensor[H·W·A, 4] xyxy``,
        ordered (y, x, anchor) to match a head's ``[N, A·k, H, W] → [N, H, W, A, k]`` reshape."""
        device = self.cell_anchors.device
        key = (feature_height, feature_width, str(device))
        if key not in self._cache:
            ys = (torch.arange(feature_height, device=device, dtype=torch.float32) + self.offset) * self.stride
            xs = (torch.arange(feature_width, device=device, dtype=torch.float32) + self.offset) * self.stride
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack((grid_x, grid_y, grid_x, grid_y), dim=-1).reshape(-1, 1, 4)
            self._cache[key] = (centres + self.cell_anchors[None]).reshape(-1, 4)
        return self._cache[key]
