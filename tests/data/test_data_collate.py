"""collate_detection pads to the largest image at the bottom and right."""

from __future__ import annotations

import pytest
import torch

from detkit.data.collate import collate_detection
from detkit.ops.pixels import to_unit_float


def test_images_are_padded_bottom_right_and_targets_kept_in_order() -> None:
    small = torch.rand(3, 4, 5)
    tall = torch.rand(3, 6, 3)
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 5.0, 4.0]]), "labels": torch.tensor([1]), "image_id": 7},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "image_id": 9}]
    images, out_targets = collate_detection([(small, targets[0]), (tall, targets[1])])
    assert images.shape == (2, 3, 6, 5) and images.dtype == torch.float32
    assert torch.equal(images[0, :, :4, :5], small) and (images[0, :, 4:] == 0).all()
    assert torch.equal(images[1, :, :6, :3], tall) and (images[1, :, :, 3:] == 0).all()
    assert out_targets[0] is targets[0] and out_targets[1] is targets[1]


def test_same_size_images_are_stacked_unchanged() -> None:
    batch = [(torch.rand(3, 8, 8), {"image_id": i}) for i in range(3)]
    images, _ = collate_detection(batch)
    assert torch.equal(images, torch.stack([image for image, _ in batch]))


def test_uint8_images_stay_uint8_and_a_float_one_makes_the_batch_float() -> None:
    pixels = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    images, _ = collate_detection([(pixels, {}), (pixels[:, :2], {})])
    assert images.dtype == torch.uint8 and torch.equal(images[0], pixels) and (images[1, :, 2:] == 0).all()
    # A mixup blend is float in [0, 1]: the uint8 image joins it scaled by 1/255.
    blended = torch.rand(3, 4, 5)
    images, _ = collate_detection([(pixels, {}), (blended, {})])
    assert images.dtype == torch.float32
    assert torch.equal(images[0], to_unit_float(pixels))
    assert torch.equal(images[1], blended)


def test_bad_batches_are_refused() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        collate_detection([])
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        collate_detection([(torch.rand(8, 8), {})])
