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

The sizes are either absolute (``sizes``, darknet's 320-608 for a 416 model) or relative to the
batch the loader built (``scales`` of its longer side, which is the run's ``data.input_size``):
relative sizes follow ``data.input_size: auto``, so a recipe tuned on small images draws sizes
around a larger dataset's own resolution instead of shrinking its images to the tuning data's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.structures import Target


class MultiScaleTraining(nn.Module):
    """``sizes``: the candidate input sizes in pixels (e.g. 320…608 in steps of 32 for a 416 model);
    or, when ``sizes`` is not given, ``scales`` of the incoming batch's longer side (e.g. 0.8…1.4),
    each rounded to a multiple of ``size_divisor``. Given sizes win over scales, so that a plain
    ``model.multiscale.sizes=[...]`` override works on every recipe. ``every``: batches between
    draws (darknet: 10)."""

    def __init__(
        self,
        sizes: Sequence[int] | None = None,
        every: int = 10,
        size_divisor: int = 32,
        *,
        scales: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if sizes is not None and (not sizes or any(int(s) < size_divisor or int(s) % size_divisor for s in sizes)):
            raise ValueError(f"MultiScaleTraining: sizes must be multiples of {size_divisor}, got {list(sizes)}")
        if sizes is None and not scales:
            raise ValueError("MultiScaleTraining: give sizes (pixels) or scales (of the input size)")
        if sizes is None and any(not scale > 0 for scale in scales):
            raise ValueError(f"MultiScaleTraining: scales must be positive, got {list(scales)}")
        if every < 1:
            raise ValueError(f"MultiScaleTraining: every must be >= 1, got {every}")
        self.sizes = tuple(int(s) for s in sizes) if sizes is not None else None
        self.scales = tuple(float(s) for s in scales) if sizes is None else None
        self.every = int(every)
        self.size_divisor = int(size_divisor)
        self.calls = 0
        self.current: int | None = None

    def extra_repr(self) -> str:
        if self.sizes is None:
            return f"scales={list(self.scales)}, every={self.every}"
        return f"sizes={list(self.sizes)}, every={self.every}"

    def candidate_sizes(self, input_size: int) -> tuple[int, ...]:
        """The sizes drawn from for batches whose longer side is ``input_size``: the given sizes,
        or the scales of it rounded to ``size_divisor`` (0.8/1.0/1.2/1.4 of 160 px: 128/160/192/224)."""
        if self.sizes is not None:
            return self.sizes
        divisor = self.size_divisor
        return tuple(sorted({max(divisor, round(input_size * scale / divisor) * divisor) for scale in self.scales}))

    def forward(self, batch: Tensor, image_sizes: Tensor, targets: list[Target]) -> tuple[Tensor, Tensor, list[Target]]:
        """``batch: Tensor[N, 3, H, W]`` (normalised, padded), ``image_sizes: Tensor[N, 2]`` (h, w),
        ``targets`` with ``boxes: Tensor[G, 4] xyxy`` → the same, resized (outside training:
        unchanged)."""
        if not self.training:
            return batch, image_sizes, targets
        if self.calls % self.every == 0:
            candidates = self.candidate_sizes(max(batch.shape[-2:]))
            self.current = candidates[int(torch.randint(len(candidates), ()))]
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
