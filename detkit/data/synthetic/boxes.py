"""Box helpers the synthetic generators share, in NumPy on single boxes (a generator places a few
objects per image, one at a time; the batched torch IoU of ``detkit.ops.iou`` would only add
conversions). Changing these changes the generated data, whose cache is keyed by its parameters
only: keep the arithmetic as it is."""

from __future__ import annotations

import numpy as np


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight ``xyxy`` box [4] of a non-empty bool mask [H, W]: the last pixel column/row + 1."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)


def pair_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``xyxy`` boxes of positive area; 0 when they do not overlap."""
    inter_w = min(a[2], b[2]) - max(a[0], b[0])
    inter_h = min(a[3], b[3]) - max(a[1], b[1])
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))
