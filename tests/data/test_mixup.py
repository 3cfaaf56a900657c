"""MixUp: exact blends of flat images, the boxes of both items, size and key mismatches named, and
the config switch on top of mosaic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.data.augment.mixup import MixUp, blend
from detkit.data.augment.mosaic import Mosaic
from detkit.engine.build import build_dataset, load_config


def item(value: float, boxes: list[list[float]], labels: list[int], image_id: int, size: int = 8):
    target = {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.int64),
        "image_id": image_id,
        "orig_size": torch.tensor([size, size]),
        "scale": torch.tensor([1.0, 1.0]),
    }
    return torch.full((3, size, size), value), target


def test_blend_is_the_weighted_sum_with_both_sets_of_boxes() -> None:
    image, target = blend(*item(1.0, [[0, 0, 2, 2]], [1], 7), *item(0.0, [[4, 4, 6, 6], [1, 1, 3, 3]], [2, 3], 9), 0.75)
    assert torch.allclose(image, torch.full((3, 8, 8), 0.75))
    assert target["boxes"].tolist() == [[0, 0, 2, 2], [4, 4, 6, 6], [1, 1, 3, 3]]
    assert target["labels"].tolist() == [1, 2, 3] and target["image_id"] == 7


def test_mismatches_are_named() -> None:
    with pytest.raises(ValueError, match="one size"):
        blend(*item(1.0, [], [], 1), *item(0.0, [], [], 2, size=16), 0.5)
    first, second = item(1.0, [], [], 1), item(0.0, [], [], 2)
    second[1]["iscrowd"] = torch.zeros(0, dtype=torch.bool)
    with pytest.raises(ValueError, match="iscrowd"):
        blend(*first, *second, 0.5)
    with pytest.raises(ValueError, match="probability"):
        MixUp([], p=2.0)


def test_wrapper_blends_with_probability_p() -> None:
    items = [item(float(i), [[i, i, i + 1, i + 1]], [1], i) for i in range(4)]
    # The wrapper's draws, in its order: the coin, the other item, the weight.
    np.random.seed(0)
    np.random.random()
    other = int(np.random.randint(0, 4))
    weight = float(np.random.beta(32.0, 32.0))
    np.random.seed(0)
    image, target = MixUp(items, p=1.0)[2]
    assert torch.allclose(image, torch.full((3, 8, 8), 2 * weight + other * (1 - weight)))
    assert target["boxes"].tolist() == [[2, 2, 3, 3], [other, other, other + 1, other + 1]]
    assert MixUp(items, p=0.0)[1][0] is items[1][0]


def test_config_switch_puts_mixup_over_mosaic(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DETKIT_CACHE", str(tmp_path))
    cfg = load_config(["data.num_train=4", "data.num_val=2", "data.image_size=96", "data.input_size=64",
                       "data.mosaic.p=1.0", "data.mixup.p=1.0"])
    train = build_dataset(cfg, "train")
    assert isinstance(train, MixUp) and isinstance(train.dataset, Mosaic)
    image, target = train[1]
    assert image.shape == (3, 64, 64) and target["boxes"].shape[0] == target["labels"].shape[0]
    assert train.class_names == ["circle", "square", "triangle", "plus", "ring"]
