"""Mosaic: four images meet at the centre with their boxes moved by hand-computable offsets; cut
boxes are dropped; the wrapper keeps the dataset's interface; the config switch and its limits."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detkit.data.augment.mosaic import FILL, Mosaic
from detkit.data.augment.transforms import eval_transforms
from detkit.data.base import DetectionDataset, ImageRecord
from detkit.engine.build import ConfigError, build_dataset, load_config

COLOURS = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]


def write_records(folder: Path) -> list[ImageRecord]:
    """Four 40 x 20 (w x h) flat images, each with one 10 x 10 box at (15, 5)."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, colour in enumerate(COLOURS):
        path = folder / f"img{i}.png"
        cv2.imwrite(str(path), np.full((20, 40, 3), colour[::-1], np.uint8))
        records.append(ImageRecord(
            path=path, file_name=path.name, image_id=i + 1, width=40, height=20,
            boxes=np.array([[15, 5, 25, 15]], np.float32), labels=np.array([i + 1]), annotation_file="hand-made",
        ))
    return records


@pytest.fixture
def dataset(tmp_path: Path) -> DetectionDataset:
    return DetectionDataset(
        write_records(tmp_path), class_names=["a", "b", "c", "d"], category_ids=[1, 2, 3, 4],
        transforms=eval_transforms(80),
    )


def test_four_images_meet_at_the_centre_with_their_boxes(dataset) -> None:
    # tile size 40: each 40 x 20 image keeps its size (scale 1); canvas 80 x 80, centre (30, 50).
    canvas, record = Mosaic(dataset).compose([0, 1, 2, 3], 40, (30.0, 50.0))
    assert canvas.shape == (80, 80, 3) and record.width == record.height == 80
    # Top-left image spans x -10..30, y 30..50 (cut at x = 0); top-right x 30..70, y 30..50;
    # bottom-left x -10..30, y 50..70; bottom-right x 30..70, y 50..70.
    assert tuple(canvas[40, 5]) == COLOURS[0] and tuple(canvas[40, 50]) == COLOURS[1]
    assert tuple(canvas[60, 5]) == COLOURS[2] and tuple(canvas[60, 50]) == COLOURS[3]
    assert tuple(canvas[10, 10]) == (FILL,) * 3 and tuple(canvas[75, 75]) == (FILL,) * 3
    expected = [[5, 35, 15, 45], [45, 35, 55, 45], [5, 55, 15, 65], [45, 55, 55, 65]]
    np.testing.assert_allclose(record.boxes, expected)
    assert record.labels.tolist() == [1, 2, 3, 4] and record.image_id == 1


def test_boxes_cut_by_the_canvas_are_kept_or_dropped_by_visibility(dataset) -> None:
    # Centre (18, 50): the left images start at x = -22, their box (15..25) lands on -7..3, 30 %
    # visible; with min_visibility 0.5 it goes, with 0.2 it stays, clipped to 0..3.
    strict = Mosaic(dataset, min_visibility=0.5).compose([0, 1, 2, 3], 40, (18.0, 50.0))[1]
    assert strict.labels.tolist() == [2, 4]
    loose = Mosaic(dataset, min_visibility=0.2).compose([0, 1, 2, 3], 40, (18.0, 50.0))[1]
    assert loose.labels.tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(loose.boxes[0], [0, 35, 3, 45])


def test_items_have_the_input_size_and_the_dataset_interface(dataset) -> None:
    np.random.seed(0)
    mosaic = Mosaic(dataset)
    image, target = mosaic[0]
    assert image.shape == (3, 80, 80) and target["boxes"].shape[1] == 4
    assert len(mosaic) == 4 and mosaic.class_names == ["a", "b", "c", "d"] and mosaic.records is dataset.records
    assert (target["boxes"] >= 0).all() and (target["boxes"] <= 80).all()
    never = Mosaic(dataset, p=0.0)
    plain_image, plain_target = dataset[2]
    image, target = never[2]
    assert torch.equal(image, plain_image) and torch.equal(target["boxes"], plain_target["boxes"])


def test_config_switch_applies_to_training_only_and_refuses_proposals(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("DETKIT_CACHE", str(tmp_path))
    small = ["data.num_train=4", "data.num_val=2", "data.image_size=96", "data.input_size=64"]
    cfg = load_config([*small, "data.mosaic.p=1.0"])
    train = build_dataset(cfg, "train")
    assert isinstance(train, Mosaic) and not isinstance(build_dataset(cfg, "val"), Mosaic)
    image, _ = train[0]
    assert image.shape == (3, 64, 64)
    assert not isinstance(build_dataset(cfg, "train", augment=False), Mosaic)
    with pytest.raises(ConfigError, match="mosaic"):
        build_dataset(load_config(["config=fast_rcnn_resnet18_shapes", *small, "data.mosaic.p=0.5"]), "train")
    with pytest.raises(ValueError, match="probability"):
        Mosaic(train.dataset, p=1.5)
