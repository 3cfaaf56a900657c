"""Adaptive average pooling that also exports to ONNX for any input and output size.

ONNX has no adaptive pooling; the exporter maps it to a plain average pool only when each output
size divides its input size (YOLOv1's 7 × 7 grid over a 10 × 10 map does not). For a fixed input
size the pooling is a linear map on each axis, so under ONNX export it becomes two matrix
products with PyTorch's own bins (``floor(i·L/n)`` to ``ceil((i+1)·L/n)``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def averaging_matrix(length: int, size: int, *, device: torch.device | None = None) -> Tensor:
    """``Tensor[size, length]`` whose row i averages input positions ``floor(i·length/size)`` to
    ``ceil((i+1)·length/size) - 1``: adaptive average pooling of one axis as a matrix."""
    matrix = torch.zeros(size, length, device=device)
    for i in range(size):
        start, end = (i * length) // size, math.ceil((i + 1) * length / size)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def adaptive_avg_pool2d(x: Tensor, output_size: tuple[int, int]) -> Tensor:
    """``F.adaptive_avg_pool2d`` of ``x: Tensor[N, C, H, W]`` to ``output_size`` (rows, cols);
    while exporting to ONNX, the same bins as matrix products (H and W are fixed there)."""
    if not torch.onnx.is_in_onnx_export():
        return F.adaptive_avg_pool2d(x, output_size)
    height, width = (int(v) for v in x.shape[-2:])
    rows = averaging_matrix(height, output_size[0], device=x.device).to(x.dtype)
    cols = averaging_matrix(width, output_size[1], device=x.device).to(x.dtype)
    return torch.matmul(torch.matmul(rows, x), cols.t())
