"""Batching detection samples whose images differ in size."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from detkit.ops.pixels import common_dtype, to_unit_float
from detkit.structures import Target


def collate_detection(batch: Sequence[tuple[torch.Tensor, Target]]) -> tuple[torch.Tensor, list[Target]]:
    """Stack ``(image Tensor[3, H_i, W_i], target)`` pairs into ``images`` Tensor[N, 3, H, W] and a target list.

    H and W are the largest height and width in the batch; smaller images are zero-padded at the
    bottom and right, so box coordinates (``xyxy`` pixels from the top-left corner) stay valid.
    The batch stays uint8 when every image is (the detector scales it on its device); one float
    image in [0, 1] (a mixup blend) makes the batch float32, its uint8 images scaled to [0, 1].
    """
    if not batch:
        raise ValueError("collate_detection got an empty batch")
    images = [image for image, _ in batch]
    for image in images:
        if image.dim() != 3:
            raise ValueError(f"collate_detection expects images shaped [C, H, W], got {tuple(image.shape)}")
    channels = {image.shape[0] for image in images}
    if len(channels) != 1:
        raise ValueError(f"images in one batch must have the same channel count, got {sorted(channels)}")
    height = max(image.shape[1] for image in images)
    width = max(image.shape[2] for image in images)
    dtype = common_dtype(images)
    batched = images[0].new_zeros((len(images), images[0].shape[0], height, width), dtype=dtype)
    for slot, image in zip(batched, images, strict=True):
        slot[:, : image.shape[1], : image.shape[2]].copy_(image if dtype == torch.uint8 else to_unit_float(image))
    return batched, [target for _, target in batch]
