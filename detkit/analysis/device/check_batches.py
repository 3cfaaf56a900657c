"""Small fixed batches of the built-in shapes data, as a detector's input, for device checks
(AMP parity, sync counts) that must not depend on dataset files being on the machine."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from detkit.data.augment.transforms import eval_transforms
from detkit.data.base import image_to_tensor
from detkit.data.synthetic.shapes_render import ShapesParams, generate_sample
from detkit.structures import Target


def shapes_batch(
    input_size: int, batch_size: int, *, proposals_per_image: int = 0, seed: int = 0
) -> tuple[Tensor, list[Target]]:
    """``images: Tensor[N, 3, S, S]`` uint8 (shapes validation images letterboxed to
    ``input_size``, as the loader yields them) and their targets (``boxes`` xyxy input pixels).

    With ``proposals_per_image`` > 0 each target also carries ``proposals: Tensor[P, 4] xyxy``:
    the ground-truth boxes, jittered copies of them and random boxes (a stand-in for selective
    search, which needs OpenCV's contrib build), for detectors that score precomputed proposals.
    Images without objects are skipped so that every image has something to find."""
    params = ShapesParams()
    transform = eval_transforms(input_size)
    rng = np.random.default_rng(seed)
    images, targets, index = [], [], 0
    while len(images) < batch_size:
        sample = generate_sample(params, "val", index)
        index += 1
        if len(sample.boxes) == 0:
            continue
        image, boxes, labels, _ = transform(sample.image, sample.boxes, sample.labels)
        target: Target = {
            "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(labels, dtype=torch.int64),
            "image_id": index - 1,
        }
        if proposals_per_image > 0:
            target["proposals"] = _proposals(target["boxes"].numpy(), input_size, proposals_per_image, rng)
        images.append(image_to_tensor(image))
        targets.append(target)
    return torch.stack(images), targets


def _proposals(boxes: np.ndarray, size: int, count: int, rng: np.random.Generator) -> Tensor:
    jittered = np.repeat(boxes, 4, axis=0)
    jittered += rng.normal(0.0, 0.1, jittered.shape) * np.tile(jittered[:, 2:] - jittered[:, :2], 2)
    corners = rng.uniform(0, size, (max(count - len(boxes) - len(jittered), 0), 2, 2))
    random = np.concatenate([corners.min(axis=1), corners.max(axis=1) + 1.0], axis=1)
    out = np.concatenate([boxes, jittered, random])[:count].clip(0, size)
    return torch.as_tensor(out, dtype=torch.float32)
