"""MixUp for detection (Zhang et al., 2017; the YOLO variant) as a training-dataset wrapper.

With probability ``p`` an item is the pixel-wise blend ``λ a + (1 - λ) b`` of itself and a random
other item, ``λ ~ Beta(alpha, alpha)`` (32: close to an even blend), with the boxes of both: the
network has to find the objects of two scenes in one image. Blends the wrapped dataset's final
items, so it composes with ``Mosaic`` (mosaics blended, as YOLOv5 does) and needs items of one
size (the letterbox gives every item the input size).
"""

from __future__ import annotations

import numpy as np
import torch

from detkit.data.augment.wrapper import DatasetWrapper
from detkit.ops.pixels import to_unit_float
from detkit.structures import Target


class MixUp(DatasetWrapper):
    """``MixUp(dataset, p=0.1)``: ``dataset`` gives ``(image Tensor[3, H, W], target)`` items."""

    def __init__(self, dataset, *, p: float = 0.1, alpha: float = 32.0) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mixup probability p must be in [0, 1], got {p}")
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be positive, got {alpha}")
        super().__init__(dataset)
        self.p = float(p)
        self.alpha = float(alpha)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image, target = self.dataset[index]
        if self.p == 0.0 or np.random.random() >= self.p:
            return image, target
        other_image, other_target = self.dataset[int(np.random.randint(0, len(self.dataset)))]
        return blend(image, target, other_image, other_target, float(np.random.beta(self.alpha, self.alpha)))


def blend(image: torch.Tensor, target: Target, other_image: torch.Tensor, other_target: Target, weight: float):
    """``weight * image + (1 - weight) * other_image`` and the boxes of both (``target``'s first;
    ``image_id``, ``orig_size`` and ``scale`` stay ``target``'s)."""
    if image.shape != other_image.shape:
        raise ValueError(
            f"mixup needs items of one size, got {tuple(image.shape)} (image_id {target['image_id']}) and "
            f"{tuple(other_image.shape)} (image_id {other_target['image_id']}); use a transform with a fixed input size"
        )
    mixed = dict(target)
    for key in ("boxes", "labels", "iscrowd", "difficult"):
        if key in target and key in other_target:
            mixed[key] = torch.cat((target[key], other_target[key]))
        elif key in target or key in other_target:
            raise ValueError(f"mixup: one item has {key!r} and the other has not; both must come from one dataset")
    # In float, as the model reads them: a blend of two uint8 images is not a uint8 image.
    return to_unit_float(image) * weight + to_unit_float(other_image) * (1.0 - weight), mixed
