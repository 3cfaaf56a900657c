"""check_targets: one batched check, and a failure still names the image and the problem."""

import pytest
import torch

from detkit.detectors.base import check_targets
from detkit.ops.image_sizes import image_sizes_tensor


def _target(boxes, labels, image_id):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels),
        "image_id": image_id,
    }


SIZES = image_sizes_tensor([(64, 64)] * 3, "cpu")


def test_a_clean_batch_with_an_empty_image_passes():
    check_targets([_target([[0, 0, 4, 4]], [1], 1), _target([], [], 2), _target([[1, 1, 9, 3]], [2], 3)], SIZES)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_target([[0, 0, 4, 4], [5, 5, 5, 9]], [1, 1], 7), r"image_id 7: degenerate.*\[\[5\.0, 5\.0, 5\.0, 9\.0\]\]"),
        (_target([[0, float("nan"), 4, 4]], [1], 7), "image_id 7: degenerate or non-finite"),
        (_target([[0, 0, 4, 4]], [0], 7), r"image_id 7: object labels must be 1\.\.C"),
    ],
)
def test_the_failing_image_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        check_targets([_target([[0, 0, 4, 4]], [1], 1), _target([], [], 2), bad], SIZES)


def test_count_and_shape_mismatches_are_named():
    with pytest.raises(ValueError, match="3 images but 1 targets"):
        check_targets([_target([], [], 1)], SIZES)
    broken = {"boxes": torch.zeros(2, 4), "labels": torch.tensor([1]), "image_id": 5}
    with pytest.raises(ValueError, match="image_id 5: 2 boxes but 1 labels"):
        check_targets([broken, _target([], [], 2), _target([], [], 3)], SIZES)
