"""The synthetic shapes generator, its cache and ShapesDataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detkit.data.synthetic.boxes import mask_box
from detkit.data.synthetic.shapes import COMPLETE_MARKER, ShapesDataset, default_cache_root, ensure_shapes
from detkit.data.synthetic.shapes_render import SHAPE_CLASSES, ShapesParams, generate_sample

PARAMS = ShapesParams(image_size=(80, 112), num_train=60, num_val=10, min_size=10, max_size=56, seed=7)


def test_same_seed_same_sample_other_seed_or_split_differs() -> None:
    first, again = generate_sample(PARAMS, "train", 5), generate_sample(PARAMS, "train", 5)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.boxes, again.boxes) and np.array_equal(first.labels, again.labels)
    other_seed = generate_sample(ShapesParams(**{**PARAMS.__dict__, "seed": 8}), "train", 5)
    other_split = generate_sample(PARAMS, "val", 5)
    assert not np.array_equal(first.image, other_seed.image)
    assert not np.array_equal(first.image, other_split.image)


def test_a_sample_does_not_depend_on_the_split_size() -> None:
    bigger = ShapesParams(**{**PARAMS.__dict__, "num_train": 500})
    assert np.array_equal(generate_sample(PARAMS, "train", 3).image, generate_sample(bigger, "train", 3).image)


def test_boxes_are_integer_inside_the_image_and_within_the_parameters() -> None:
    height, width = PARAMS.image_size
    samples = [generate_sample(PARAMS, "train", i) for i in range(PARAMS.num_train)]
    counts = [len(s.boxes) for s in samples]
    assert max(counts) <= PARAMS.max_objects
    assert 0 < counts.count(0) < len(samples) // 4, "expected a few images without objects"
    boxes = np.concatenate([s.boxes for s in samples])
    labels = np.concatenate([s.labels for s in samples])
    assert np.array_equal(boxes, np.round(boxes))
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    sides = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    assert (sides >= PARAMS.min_size / 2).all()
    # The longer side is the drawn size (up to a pixel of rounding) unless the border cuts the shape.
    assert sides.max() <= PARAMS.max_size + 1
    assert set(labels.tolist()) == set(range(1, len(SHAPE_CLASSES) + 1))
    truncated = np.concatenate([s.truncated for s in samples])
    assert truncated.any() and not truncated.all()
    touches = (boxes[:, 0] == 0) | (boxes[:, 1] == 0) | (boxes[:, 2] == width) | (boxes[:, 3] == height)
    assert not (truncated & ~touches).any(), "a cut object must reach the border"


def test_boxes_are_tight_around_the_visible_drawn_pixels() -> None:
    params = ShapesParams(**{**PARAMS.__dict__, "pixel_noise": 0.0})
    checked = 0
    for index in range(20):
        sample = generate_sample(params, "train", index)
        for box, mask, colour in zip(sample.boxes, sample.masks, sample.colors, strict=True):
            # Every visible pixel carries the object's colour, and the box is their exact extent.
            assert (sample.image[mask] == colour).all()
            x1, y1, x2, y2 = box.astype(int)
            assert mask[:, x1].any() and mask[:, x2 - 1].any() and mask[y1].any() and mask[y2 - 1].any()
            assert not mask[:, :x1].any() and not mask[:, x2:].any()
            assert not mask[:y1].any() and not mask[y2:].any()
            np.testing.assert_array_equal(mask_box(mask), box)
            checked += 1
    assert checked > 20


def test_overlaps_are_bounded() -> None:
    for index in range(PARAMS.num_train):
        sample = generate_sample(PARAMS, "train", index)
        if len(sample.boxes) < 2:
            continue
        overlaps = box_iou(torch.from_numpy(sample.boxes), torch.from_numpy(sample.boxes))
        overlaps.fill_diagonal_(0)
        assert overlaps.max() <= 0.4 + 1e-6
        assert not np.logical_and(sample.masks[:, None], sample.masks[None]).any(axis=(2, 3))[
            ~np.eye(len(sample.boxes), dtype=bool)
        ].any(), "visible masks must not share pixels"


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        ShapesParams(image_size=64, min_size=12, max_size=90)
    with pytest.raises(ValueError, match="image_size"):
        ShapesParams(image_size=(8, 8), min_size=6, max_size=8)
    with pytest.raises(ValueError, match="split"):
        generate_sample(PARAMS, "test", 0)


def test_dataset_generates_once_and_reads_through_coco(tmp_path: Path) -> None:
    kwargs = dict(num_train=8, num_val=4, image_size=(64, 96), min_size=8, max_size=40, seed=1)
    train = ShapesDataset(tmp_path, "train", **kwargs)
    folder = train.folder
    assert folder.parent == tmp_path and (folder / COMPLETE_MARKER).is_file()
    assert (folder / "annotations" / "instances_train.json").is_file()
    assert len(train) == 8 and train.class_names == list(SHAPE_CLASSES) and train.category_ids == [1, 2, 3, 4, 5]
    stamp = (folder / "annotations" / "instances_train.json").stat().st_mtime_ns
    val = ShapesDataset(tmp_path, "val", **kwargs)
    assert val.folder == folder and len(val) == 4
    assert (folder / "annotations" / "instances_train.json").stat().st_mtime_ns == stamp, "cache was rewritten"

    image, target = train[0]
    assert image.shape == (3, 64, 96) and image.dtype == torch.uint8  # the detector scales it on its device
    expected = generate_sample(train.params, "train", 0)
    torch.testing.assert_close(target["boxes"], torch.from_numpy(expected.boxes))
    torch.testing.assert_close(target["labels"], torch.from_numpy(expected.labels))
    assert target["orig_size"].tolist() == [64, 96]
    assert [p.name for p in tmp_path.iterdir()] == [folder.name], "no staging folder may be left behind"

    other = ShapesDataset(tmp_path, "train", **{**kwargs, "seed": 2})
    assert other.folder != folder


def test_half_written_cache_is_regenerated(tmp_path: Path) -> None:
    params = ShapesParams(image_size=48, num_train=3, num_val=2, min_size=8, max_size=24)
    folder = tmp_path / params.digest()
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / "instances_train.json").write_text("{truncated")
    assert ensure_shapes(params, tmp_path) == folder
    assert (folder / COMPLETE_MARKER).is_file()
    document = json.loads((folder / "annotations" / "instances_train.json").read_text())
    assert len(document["images"]) == 3


def test_default_cache_root_follows_detkit_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DETKIT_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path / "shapes"
    monkeypatch.delenv("DETKIT_CACHE")
    assert default_cache_root() == Path(os.path.expanduser("~")) / ".cache" / "detkit" / "shapes"


def test_unknown_split_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'train' or 'val'"):
        ShapesDataset(tmp_path, "test", num_train=2, num_val=2, image_size=48, min_size=8, max_size=24)
