"""Multi-scale training (YOLOv2): every ``every`` training batches the network input size is drawn
anew from ``sizes`` and each batch is resized to it, boxes with it.

It runs inside the detector, on the batch the data loader already built, as darknet resizes its
network: so it works with any dataset, loader, worker count and collate, and under DDP (each
process draws its own size; gradients are shapes-independent). Evaluation and inference are not
touched (eval mode), and it holds no tensors, so checkpoints are unchanged. Sizes are drawn from
the global torch RNG, which checkpoints restore, so a resumed run keeps its random stream; the
period restarts at the resume point.

The longer side of the batch becomes the drawn size and the other side keeps the aspect ratio,
rounded to a multiple of ``size_divisor`` (the backbone's total stride).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.structures import Target


class MultiScaleTraining(nn.Module):
    """``sizes``: the candidate input sizes in pixels (e.g. 320…608 in steps of 32 for a 416 model);
    ``every``: batches between draws (darknet: 10)."""

    def __init__(self, sizes: Sequence[int], every: int = 10, size_divisor: int = 32) -> None:
        super().__init__()
        if not sizes or any(int(s) < size_divisor or int(s) % size_divisor for s in sizes):
            raise ValueError(f"MultiScaleTraining: sizes must be multiples of {size_divisor}, got {list(sizes)}")
        if every < 1:
            raise ValueError(f"MultiScaleTraining: every must be >= 1, got {every}")
        self.sizes = tuple(int(s) for s in sizes)
        self.every = int(every)
        self.size_divisor = int(size_divisor)
        self.calls = 0
        self.current: int | None = None

    def extra_repr(self) -> str:
        return f"sizes={list(self.sizes)}, every={self.every}"

    def forward(self, batch: Tensor, image_sizes: Tensor, targets: list[Target]) -> tuple[Tensor, Tensor, list[Target]]:
        """``batch: Tensor[N, 3, H, W]`` (normalised, padded), ``image_sizes: Tensor[N, 2]`` (h, w),
        ``targets`` with ``boxes: Tensor[G, 4] xyxy`` → the same, resized (outside training:
        unchanged)."""
        if not self.training:
            return batch, image_sizes, targets
        if self.calls % self.every == 0:
            self.current = self.sizes[int(torch.randint(len(self.sizes), ()))]
        self.calls += 1
        height, width = batch.shape[-2:]
        scale = self.current / max(height, width)
        new_h = max(self.size_divisor, round(height * scale / self.size_divisor) * self.size_divisor)
        new_w = max(self.size_divisor, round(width * scale / self.size_divisor) * self.size_divisor)
        if (new_h, new_w) == (height, width):
            return batch, image_sizes, targets
        scale_y, scale_x = new_h / height, new_w / width
        resized = F.interpolate(batch, size=(new_h, new_w), mode="bilinear", align_corners=False)
        factors = torch.tensor([scale_x, scale_y, scale_x, scale_y])
        new_targets = [{**t, "boxes": t["boxes"] * factors.to(t["boxes"])} for t in targets]
        new_sizes = (image_sizes.float() * torch.tensor([scale_y, scale_x], device=image_sizes.device)).round().long()
        return resized, new_sizes.clamp(min=1), new_targets
