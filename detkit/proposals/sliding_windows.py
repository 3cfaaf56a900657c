"""Sliding windows as a proposal generator: what turns R-CNN into the sliding-window detector.

The teaching baseline before region proposals: a patch classifier looks at every window of a
multi-scale grid. Here the windows take the place of selective search's proposals in
``detkit.detectors.rcnn.RCNN`` (which crops, warps and classifies them, refines the boxes and runs
class-wise NMS), so the two detectors differ only in where their boxes come from, and
``windows_per_image`` vs. proposals per image is the comparison the course makes.

The grid: for every window size s (the side of a square of the same area) and aspect ratio
r = height / width, windows of width ``s / sqrt(r)`` and height ``s * sqrt(r)``, placed every
``stride_fraction * s`` pixels in x and y, entirely inside the image, the grid centred (equal
margins left and right). A window larger than the image side is not placed.

Training (``train()`` mode) needs positives and negatives for the patch classifier, not the whole
grid: per ground-truth box ``jitter_per_object`` jittered copies (shifted by up to
``jitter_shift`` of its size and rescaled by up to ``jitter_scale``; those overlapping the object
by IoU >= 0.5 are the head's positives) and ``random_windows_train`` windows drawn from the grid
(mostly background: the head's negatives are those under its ``bg_iou_range``, 0.3 in the
sliding-window config). The head's sampler then balances them.

Shapes: N images, W windows per image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.ops.boxes import clip_boxes
from detkit.structures import Target


def window_grid(
    height: int, width: int, *, sizes: Sequence[float], aspect_ratios: Sequence[float], stride_fraction: float
) -> Tensor:
    """Every window of the grid over a ``height x width`` image: ``Tensor[W, 4] xyxy`` float32,
    ordered by size, then aspect ratio, then row, then column."""
    windows = []
    for size in sizes:
        stride = stride_fraction * size
        for ratio in aspect_ratios:
            window_w, window_h = size / math.sqrt(ratio), size * math.sqrt(ratio)
            xs = _positions(width, window_w, stride)
            ys = _positions(height, window_h, stride)
            if xs.numel() == 0 or ys.numel() == 0:
                continue
            y1, x1 = torch.meshgrid(ys, xs, indexing="ij")
            x1, y1 = x1.reshape(-1), y1.reshape(-1)
            windows.append(torch.stack((x1, y1, x1 + window_w, y1 + window_h), dim=1))
    if not windows:
        return torch.zeros(0, 4)
    return torch.cat(windows).float()


def _positions(extent: int, window: float, stride: float) -> Tensor:
    """Left (or top) edges of windows of side ``window`` every ``stride`` pixels inside ``extent``."""
    if window > extent + 1e-6:
        return torch.zeros(0, dtype=torch.float64)
    count = int(math.floor((extent - window) / stride + 1e-9)) + 1
    margin = (extent - window - (count - 1) * stride) / 2
    return margin + stride * torch.arange(count, dtype=torch.float64)


def count_windows(
    height: int, width: int, *, sizes: Sequence[float], aspect_ratios: Sequence[float], stride_fraction: float
) -> int:
    """How many windows :func:`window_grid` places, from the counts per axis (no boxes built)."""
    total = 0
    for size in sizes:
        stride = stride_fraction * size
        for ratio in aspect_ratios:
            total += len(_positions(width, size / math.sqrt(ratio), stride)) * len(
                _positions(height, size * math.sqrt(ratio), stride)
            )
    return total


def jitter_boxes(
    boxes: Tensor, count: int, *, shift: float, scale: float, generator: torch.Generator | None = None
) -> Tensor:
    """``count`` random copies of each of ``boxes: Tensor[G, 4] xyxy``: centre moved by up to
    ``shift`` times the box's width/height, width and height multiplied by ``exp(U(-scale, scale))``
    each. Returns ``Tensor[G * count, 4] xyxy`` (not clipped)."""
    if boxes.numel() == 0 or count == 0:
        return boxes.new_zeros(0, 4)
    repeated = boxes.float().repeat_interleave(count, dim=0)
    sizes = repeated[:, 2:] - repeated[:, :2]
    centres = (repeated[:, :2] + repeated[:, 2:]) / 2
    noise = torch.rand(repeated.shape[0], 4, generator=generator).to(boxes.device) * 2 - 1
    centres = centres + noise[:, :2] * shift * sizes
    sizes = sizes * torch.exp(noise[:, 2:] * scale)
    return torch.cat((centres - sizes / 2, centres + sizes / 2), dim=1)


class SlidingWindows(nn.Module):
    """Proposal generator (``generator(features, image_sizes, targets) -> (proposals, losses)``)
    that returns the window grid at test time and jittered objects plus random grid windows in
    training (see the module docstring). Nothing to learn: the losses are empty.

    ``sizes``: window sizes in input pixels (side of the equal-area square); ``aspect_ratios``:
    height / width; ``stride_fraction``: step between windows as a fraction of the size.
    ``in_channels`` and ``stride`` are accepted for the detectors' factory interface and not used.
    """

    def __init__(
        self,
        *,
        sizes: Sequence[float] = (16, 24, 36, 54, 81, 122),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        stride_fraction: float = 0.34,
        jitter_per_object: int = 8,
        jitter_shift: float = 0.2,
        jitter_scale: float = 0.25,
        random_windows_train: int = 128,
        in_channels: int | None = None,
        stride: int | None = None,
    ) -> None:
        super().__init__()
        if not sizes or min(sizes) <= 0 or not aspect_ratios or min(aspect_ratios) <= 0:
            raise ValueError(
                f"sizes {list(sizes)} and aspect_ratios {list(aspect_ratios)} must be non-empty and positive"
            )
        if not 0 < stride_fraction:
            raise ValueError(f"stride_fraction must be positive, got {stride_fraction}")
        if jitter_per_object < 0 or random_windows_train < 0:
            raise ValueError("jitter_per_object and random_windows_train must be >= 0")
        self.sizes = tuple(float(s) for s in sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.stride_fraction = float(stride_fraction)
        self.jitter_per_object = int(jitter_per_object)
        self.jitter_shift = float(jitter_shift)
        self.jitter_scale = float(jitter_scale)
        self.random_windows_train = int(random_windows_train)
        # Windows scored per image by the latest test-time call (what the detector reports).
        self.last_windows_per_image: list[int] = []

    def grid(self, height: int, width: int) -> Tensor:
        """The test-time windows of one ``height x width`` image: ``Tensor[W, 4] xyxy``."""
        return window_grid(
            height, width, sizes=self.sizes, aspect_ratios=self.aspect_ratios, stride_fraction=self.stride_fraction
        )

    def windows_per_image(self, height: int, width: int) -> int:
        """How many windows the detector scores on a ``height x width`` input image."""
        return count_windows(
            height, width, sizes=self.sizes, aspect_ratios=self.aspect_ratios, stride_fraction=self.stride_fraction
        )

    def forward(
        self, features: Tensor | None, image_sizes: Tensor, targets: list[Target] | None = None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """``image_sizes: Tensor[N, 2]`` (height, width) → per image ``Tensor[W_i, 4] xyxy`` input
        pixels on ``image_sizes``' device, and no losses. ``targets`` are needed in training only."""
        device = image_sizes.device
        grids: dict[tuple[int, int], Tensor] = {}
        out = []
        for index, (height, width) in enumerate(image_sizes.tolist()):
            if (height, width) not in grids:
                grids[(height, width)] = self.grid(height, width).to(device)
            grid = grids[(height, width)]
            if not self.training:
                out.append(grid)
                continue
            if targets is None:
                raise ValueError("SlidingWindows in train() mode needs the targets (to jitter the objects)")
            pick = torch.randperm(grid.shape[0], device=device)[: self.random_windows_train]
            jittered = jitter_boxes(
                targets[index]["boxes"].to(device),
                self.jitter_per_object,
                shift=self.jitter_shift,
                scale=self.jitter_scale,
            )
            boxes = clip_boxes(torch.cat((jittered, grid[pick])), height, width)
            keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
            out.append(boxes[keep])
        if not self.training:
            self.last_windows_per_image = [int(p.shape[0]) for p in out]
        return out, {}
