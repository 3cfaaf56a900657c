"""Image pixels as the loader carries them (uint8, 0-255) and as models read them (float, 0-1).

Datasets yield ``Tensor[3, H, W]`` uint8 so that loader workers, pinned memory and the copy to
the GPU move a quarter of float32's bytes; the detector turns them into floats on its device.
Every place that needs floats (the detector, mixup's blend, export samples, drawing) calls
:func:`to_unit_float`, so all of them compute exactly the same values: ``float32(x) * float32(1/255)``,
which is also what the loader computed before images travelled as uint8.
"""

from __future__ import annotations

import torch
from torch import Tensor


def to_unit_float(images: Tensor) -> Tensor:
    """``Tensor[..., H, W]`` uint8 in 0..255 → float32 in [0, 1]; a floating tensor is returned
    unchanged (already in [0, 1] by the model's input contract)."""
    if images.dtype == torch.uint8:
        # A Python scalar multiplies in the tensor's dtype: float32(1/255), as numpy's float32 path.
        return images.to(torch.float32) * (1.0 / 255.0)
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 (0-255) or floating point (0-1), got {images.dtype}")
    return images


def common_dtype(images: list[Tensor]) -> torch.dtype:
    """The dtype a batch of these images can be stacked in without losing values: uint8 when all
    are uint8, else float32 (uint8 members are then scaled to [0, 1] with :func:`to_unit_float`)."""
    return torch.uint8 if all(image.dtype == torch.uint8 for image in images) else torch.float32
