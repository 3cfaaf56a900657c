"""WithProposals: proposals reach the targets, transformed exactly like the image and its boxes."""

from __future__ import annotations

import pickle

import albumentations as A
import numpy as np
import pytest
import torch

from detkit.data.augment.transforms import DetectionTransform, eval_transforms, train_transforms
from detkit.data.proposals.with_proposals import WithProposals
from tests.data.proposals.drawn_images import HEIGHT, WIDTH

SEARCH = {"strategy": "single", "search_size": None, "min_size": 3.0}


def _wrap(dataset, tmp_path):
    return WithProposals(
        dataset, split="val", cache_dir=tmp_path / "cache", num_workers=0, progress=False, **SEARCH
    )


def test_letterbox_scales_proposals_and_leaves_the_targets_alone(make_dataset, tmp_path) -> None:
    plain = make_dataset(eval_transforms(64))
    wrapped = _wrap(make_dataset(eval_transforms(64)), tmp_path)
    assert len(wrapped) == len(plain) == 3
    for index in range(3):
        image, target = wrapped[index]
        plain_image, plain_target = plain[index]
        assert torch.equal(image, plain_image)
        for key in ("boxes", "labels", "scale", "orig_size"):
            assert torch.equal(target[key], plain_target[key]), key
        # 128 x 96 stored -> 64 x 48: the proposals are the cached ones times 0.5, in rank order.
        stored = torch.from_numpy(wrapped.proposals.boxes(index))
        assert target["proposals"].dtype == torch.float32
        assert torch.allclose(target["proposals"], stored * 0.5, atol=1e-4)


def test_flip_moves_proposals_with_the_image(make_dataset, tmp_path) -> None:
    flip = train_transforms(WIDTH, hflip=1.0, color_jitter=0.0, crop=0.0, min_area=0.0, min_visibility=0.0)
    wrapped = _wrap(make_dataset(flip), tmp_path)
    image, target = wrapped[0]
    stored = torch.from_numpy(wrapped.proposals.boxes(0))
    mirrored = torch.stack((WIDTH - stored[:, 2], stored[:, 1], WIDTH - stored[:, 0], stored[:, 3]), dim=1)
    assert torch.allclose(target["proposals"], mirrored, atol=1e-4)
    record = wrapped.records[0]
    gt = torch.from_numpy(record.boxes)
    assert torch.allclose(
        target["boxes"], torch.stack((WIDTH - gt[:, 2], gt[:, 1], WIDTH - gt[:, 0], gt[:, 3]), 1)
    )
    # The transform's dropped-box statistics stay about the ground truth.
    assert flip.seen_boxes == len(record.boxes) and flip.dropped_boxes == 0


def test_a_crop_drops_the_proposals_it_cuts_away(make_dataset, tmp_path) -> None:
    crop = DetectionTransform(
        64, augment=[A.Crop(x_min=0, y_min=0, x_max=64, y_max=HEIGHT)], min_area=1.0, min_visibility=0.5
    )
    wrapped = _wrap(make_dataset(crop), tmp_path)
    _, target = wrapped[0]
    stored = torch.from_numpy(wrapped.proposals.boxes(0))
    sx, sy = target["scale"].tolist()  # the 64 x 96 crop is letterboxed to 43 x 64
    assert (sx, sy) == pytest.approx((43 / 64, 64 / 96))
    scaled = stored * torch.tensor([sx, sy, sx, sy])
    proposals = target["proposals"]
    assert (proposals[:, 2] <= 64 * sx + 1e-4).all()
    inside = scaled[stored[:, 2] <= 64]  # untouched by the crop: all kept, only rescaled
    outside = stored[:, 0] >= 64  # entirely cut away: all dropped
    assert inside.shape[0] > 0 and outside.any()
    matches = (proposals[None, :, :] - inside[:, None, :]).abs().amax(dim=2) < 1e-3
    assert matches.any(dim=1).all()
    assert proposals.shape[0] <= int((~outside).sum())


def test_untransformed_dataset_attributes_and_pickling(make_dataset, tmp_path) -> None:
    wrapped = _wrap(make_dataset(), tmp_path)
    _, target = wrapped[2]
    assert np.array_equal(target["proposals"].numpy(), wrapped.proposals.boxes(2))
    assert target["boxes"].shape == (0, 4)
    assert wrapped.class_names == ["box"] and wrapped.category_ids == [1]
    assert len(wrapped.coco_ground_truth()["annotations"]) == 3
    restored = pickle.loads(pickle.dumps(wrapped))  # DataLoader workers may receive it pickled
    assert torch.equal(restored[1][1]["proposals"], wrapped[1][1]["proposals"])
    with pytest.raises(AttributeError):
        _ = wrapped.no_such_attribute


def test_reordered_dataset_is_detected(make_dataset, tmp_path) -> None:
    dataset = make_dataset()
    wrapped = _wrap(dataset, tmp_path)
    dataset.records.reverse()
    with pytest.raises(RuntimeError, match="changed order"):
        wrapped[0]
