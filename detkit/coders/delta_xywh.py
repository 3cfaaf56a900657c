"""The R-CNN box parameterisation: centre offsets scaled by the reference size, log size ratios.

    dx = wx·(gx − px)/pw   dy = wy·(gy − py)/ph   dw = ww·log(gw/pw)   dh = wh·log(gh/ph)

used by R-CNN, Fast/Faster R-CNN (weights (10, 10, 5, 5) in the RoI head, (1, 1, 1, 1) in the RPN)
and SSD (weights (10, 10, 5, 5), the paper's "variances" 0.1/0.2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

# exp() of a larger delta would give boxes 1000× their reference: clamp before decoding.
DEFAULT_SCALE_CLAMP = math.log(1000.0 / 16)


class DeltaXYWHCoder:
    def __init__(
        self, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), scale_clamp: float = DEFAULT_SCALE_CLAMP
    ) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.scale_clamp = scale_clamp

    def encode(self, reference: Tensor, target: Tensor) -> Tensor:
        """``reference, target: Tensor[..., 4] xyxy`` (same shape) → ``deltas: Tensor[..., 4]``."""
        wx, wy, ww, wh = self.weights
        pw = (reference[..., 2] - reference[..., 0]).clamp(min=1e-6)
        ph = (reference[..., 3] - reference[..., 1]).clamp(min=1e-6)
        px = reference[..., 0] + 0.5 * pw
        py = reference[..., 1] + 0.5 * ph
        gw = (target[..., 2] - target[..., 0]).clamp(min=1e-6)
        gh = (target[..., 3] - target[..., 1]).clamp(min=1e-6)
        gx = target[..., 0] + 0.5 * gw
        gy = target[..., 1] + 0.5 * gh
        return torch.stack(
            (wx * (gx - px) / pw, wy * (gy - py) / ph, ww * torch.log(gw / pw), wh * torch.log(gh / ph)), dim=-1
        )

    def decode(self, deltas: Tensor, reference: Tensor) -> Tensor:
        """``deltas: Tensor[..., 4]`` and ``reference: Tensor[..., 4] xyxy`` (broadcastable)
        → ``boxes: Tensor[..., 4] xyxy``. Computed in float32 even under autocast."""
        deltas = deltas.float()
        reference = reference.float()
        wx, wy, ww, wh = self.weights
        pw = reference[..., 2] - reference[..., 0]
        ph = reference[..., 3] - reference[..., 1]
        px = reference[..., 0] + 0.5 * pw
        py = reference[..., 1] + 0.5 * ph
        dx = deltas[..., 0] / wx
        dy = deltas[..., 1] / wy
        dw = (deltas[..., 2] / ww).clamp(max=self.scale_clamp)
        dh = (deltas[..., 3] / wh).clamp(max=self.scale_clamp)
        cx = px + dx * pw
        cy = py + dy * ph
        w = pw * torch.exp(dw)
        h = ph * torch.exp(dh)
        return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)
