"""Letterbox scale exactness, training augmentation validity, drop counting, per-worker randomness."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from detkit.data.augment.transforms import bbox_safe_crop, eval_transforms, scale_and_filter_boxes, train_transforms
from detkit.data.formats.coco import CocoDataset
from detkit.structures import boxes_to_original


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("height", "width", "size"), [(72, 96, 128), (50, 77, 64), (90, 40, 60), (64, 64, 64)])
def test_eval_letterbox_scale_is_exact_and_padding_is_bottom_right(height: int, width: int, size: int) -> None:
    boxes = np.array([[0, 0, width, height], [3.5, 7, 20, 31], [width - 9, height - 5, width, height]], np.float32)
    image, out_boxes, labels, (sx, sy) = eval_transforms(size)(_image(height, width), boxes, np.array([4, 5, 6]))
    assert image.shape == (size, size, 3) and labels.tolist() == [4, 5, 6]
    # Longest side to `size`, the other rounded to whole pixels: the two scales are the pixel ratios.
    resized_w, resized_h = round(width * size / max(height, width)), round(height * size / max(height, width))
    assert (sx, sy) == pytest.approx((resized_w / width, resized_h / height), abs=1e-12)
    np.testing.assert_allclose(out_boxes, boxes * [sx, sy, sx, sy], atol=1e-3)
    assert (image[resized_h:] == 0).all() and (image[:, resized_w:] == 0).all()
    assert image[:resized_h, :resized_w].min() > 0  # the content starts at the top-left corner
    target = {
        "boxes": torch.from_numpy(out_boxes),
        "scale": torch.tensor([sx, sy]),
        "orig_size": torch.tensor([height, width]),
    }
    torch.testing.assert_close(boxes_to_original(target["boxes"], target), torch.from_numpy(boxes), atol=2e-3, rtol=0)


def test_dataset_targets_map_back_to_the_stored_boxes(shapes_layouts) -> None:
    root = shapes_layouts["coco"]
    dataset = CocoDataset(
        root / "annotations" / "instances_train.json", root / "train" / "images", transforms=eval_transforms(80)
    )
    for index in range(len(dataset)):
        image, target = dataset[index]
        assert image.shape == (3, 80, 80)
        torch.testing.assert_close(target["scale"], torch.tensor([80 / 96, 60 / 72]))
        stored = torch.from_numpy(dataset.records[index].boxes)
        torch.testing.assert_close(boxes_to_original(target["boxes"], target), stored, atol=2e-3, rtol=0)


def test_horizontal_flip_mirrors_boxes() -> None:
    transform = train_transforms(40, hflip=1.0, color_jitter=0.0, crop=0.0)
    image = _image(20, 40)
    out_image, boxes, labels, scale = transform(image, np.array([[2, 3, 12, 8]], np.float32), np.array([1]))
    assert scale == (1.0, 1.0)
    np.testing.assert_allclose(boxes, [[28, 3, 38, 8]], atol=1e-4)
    assert np.array_equal(out_image[:20], image[:, ::-1])


def test_small_boxes_are_dropped_counted_and_labels_follow() -> None:
    transform = train_transforms(64, hflip=0.0, color_jitter=0.0, crop=0.0, min_area=100.0)
    boxes = np.array([[0, 0, 4, 4], [10, 10, 60, 60], [20, 5, 26, 40]], np.float32)  # areas 16, 2500, 210
    _, out_boxes, labels, _ = transform(_image(64, 64), boxes, np.array([7, 8, 9]))
    assert labels.tolist() == [8, 9]
    np.testing.assert_allclose(out_boxes, boxes[1:], atol=1e-4)
    assert (transform.seen_boxes, transform.dropped_boxes) == (3, 1)
    # Shrinking 128 -> 64 halves sides: the 20x20 box becomes 10x10 = 100 px (kept), 18x18 -> 81 px (dropped).
    boxes = np.array([[0, 0, 20, 20], [50, 50, 68, 68]], np.float32)
    _, out_boxes, labels, _ = transform(_image(128, 128), boxes, np.array([1, 2]))
    assert labels.tolist() == [1] and (transform.seen_boxes, transform.dropped_boxes) == (5, 2)


def test_train_transforms_keep_boxes_valid_on_real_samples(shapes_layouts) -> None:
    root = shapes_layouts["coco"]
    transform = train_transforms(64, crop=1.0, scale_jitter=0.3, min_area=0.0, min_visibility=0.0)
    dataset = CocoDataset(
        root / "annotations" / "instances_train.json", root / "train" / "images", transforms=transform
    )
    for _ in range(3):
        for index in range(len(dataset)):
            image, target = dataset[index]
            boxes = target["boxes"]
            assert image.shape == (3, 64, 64)
            assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
            assert boxes.min() >= 0 and boxes.max() <= 64
            # A bbox-safe crop with no area threshold keeps every box (images without any included).
            assert len(boxes) == len(dataset.records[index].boxes)
            assert target["labels"].tolist() == dataset.records[index].labels.tolist()
    assert transform.dropped_boxes == 0 and transform.seen_boxes > 0


def test_scale_jitter_zooms_out_within_range() -> None:
    transform = train_transforms(100, hflip=0.0, color_jitter=0.0, crop=0.0, scale_jitter=0.4)
    scales = {transform(_image(50, 50), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))[3][0] for _ in range(40)}
    assert len(scales) > 5 and min(scales) >= 60 / 50 - 1e-9 and max(scales) <= 100 / 50 + 1e-9


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="hflip"):
        train_transforms(64, hflip=1.5)
    with pytest.raises(ValueError, match="scale_jitter"):
        train_transforms(64, scale_jitter=1.0)
    with pytest.raises(ValueError, match="input_size"):
        eval_transforms(0)


def _jitter_outputs(seed: int) -> list[np.ndarray]:
    torch.manual_seed(seed)
    transform = train_transforms(32, color_jitter=0.5)
    empty = np.zeros((0, 4), np.float32)
    return [transform(_image(32, 32), empty, np.zeros(0, np.int64))[0] for _ in range(4)]


def test_augmentation_follows_the_torch_seed() -> None:
    first, again, other = _jitter_outputs(1), _jitter_outputs(1), _jitter_outputs(2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


class _SameImage(Dataset):
    def __init__(self, transform) -> None:
        self.transform = transform

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        image, _, _, _ = self.transform(_image(16, 16), np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
        return torch.from_numpy(image)


def test_dataloader_workers_and_epochs_get_different_augmentations() -> None:
    transform = pickle.loads(pickle.dumps(train_transforms(16, color_jitter=0.5, hflip=0.0, crop=0.0)))
    torch.manual_seed(0)
    loader = DataLoader(_SameImage(transform), batch_size=1, num_workers=2)
    epochs = [[batch[0] for batch in loader] for _ in range(2)]
    first = epochs[0]
    # Worker 0 made items 0, 2, 4, ...; worker 1 items 1, 3, 5, ...: their k-th draws must differ.
    assert not any(torch.equal(first[k], first[k + 1]) for k in range(0, 8, 2))
    assert not any(torch.equal(a, b) for a, b in zip(epochs[0], epochs[1], strict=True))


def test_bbox_safe_crop_keeps_every_box_whole_even_sub_pixel_ones_at_the_border() -> None:
    # albumentations' BBoxSafeRandomCrop returned an empty crop (y_max = 0) for such a box.
    image = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    boxes = np.array([[5, 0, 10, 0.001], [12.5, 3.25, 29.5, 7.75]], np.float32)
    rng = np.random.default_rng(0)
    origins = set()
    for _ in range(200):
        crop, moved = bbox_safe_crop(image, boxes, rng)
        height, width = crop.shape[:2]
        # The crop is a window of the image at an integer offset, and the boxes moved by exactly it.
        offset = moved[0, :2] - boxes[0, :2]
        x0, y0 = int(-offset[0]), int(-offset[1])
        assert np.array_equal(crop, image[y0 : y0 + height, x0 : x0 + width])
        np.testing.assert_array_equal(moved, boxes - np.float32([x0, y0, x0, y0]))
        assert (moved[:, :2] >= 0).all() and (moved[:, 2] <= width).all() and (moved[:, 3] <= height).all()
        assert 0 <= x0 <= 5 and x0 + width == 30 and y0 == 0 and 8 <= height <= 20  # ceil(29.5), ceil(7.75)
        origins.add((x0, height))
    assert len(origins) > 20  # it is random


def test_scale_and_filter_boxes_by_hand() -> None:
    boxes = np.array([[0, 0, 10, 10], [2, 2, 3, 3], [8, 0, 30, 4], [5, 5, 5, 9]], np.float32)
    kept, labels = scale_and_filter_boxes(
        boxes, np.array([1, 2, 3, 4]), (2.0, 0.5), (10, 40), min_area=4.0, min_visibility=0.5
    )
    # [0, 0, 20, 5] area 100; [4, 1, 6, 1.5] area 1 < 4: dropped; [16, 0, 60, 2] clipped to x2 = 40:
    # 48 of 88 square pixels visible (0.55 >= 0.5); the zero-width box is dropped.
    np.testing.assert_allclose(kept, [[0, 0, 20, 5], [16, 0, 40, 2]])
    assert labels.tolist() == [1, 3]
    _, labels = scale_and_filter_boxes(boxes, np.array([1, 2, 3, 4]), (2.0, 0.5), (10, 40), min_visibility=0.6)
    assert labels.tolist() == [1, 2]   # the clipped box keeps 0.55 < 0.6 of its area


@pytest.mark.parametrize("min_area", [0.0, 30.0])
def test_letterbox_boxes_agree_with_albumentations_own_box_processing(min_area: float) -> None:
    # The letterbox scales and filters boxes itself; albumentations with its box processor on the
    # same resize and pad must give the same boxes and keep the same ones.
    import albumentations as A
    import cv2

    rng = np.random.default_rng(3)
    dropped = 0
    for trial in range(40):
        height, width = (int(v) for v in rng.integers(20, 300, size=2))
        size = int(rng.integers(32, 200))
        corner = rng.uniform(0, 1, size=(6, 2)) * [width - 2, height - 2]
        extent = rng.uniform(1, 1, size=(6, 2)) + rng.uniform(0, 0.5, size=(6, 2)) * [width, height]
        boxes = np.concatenate([corner, np.minimum(corner + extent, [width, height])], axis=1).astype(np.float32)
        labels = np.arange(len(boxes))
        reference = A.Compose(
            [A.LongestMaxSize(max_size=size),
             A.PadIfNeeded(min_height=size, min_width=size, position="top_left", border_mode=cv2.BORDER_CONSTANT,
                           fill=0)],
            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_area=min_area, clip=True),
        )(image=_image(height, width, trial), bboxes=boxes, labels=labels)
        transform = train_transforms(size, hflip=0.0, color_jitter=0.0, crop=0.0, min_area=min_area, min_visibility=0.0)
        image, out_boxes, out_labels, _ = transform(_image(height, width, trial), boxes, labels)
        np.testing.assert_array_equal(image, reference["image"])
        assert out_labels.tolist() == list(reference["labels"]), f"trial {trial}"
        np.testing.assert_allclose(out_boxes, np.asarray(reference["bboxes"], np.float32).reshape(-1, 4), atol=1e-3)
        dropped += len(boxes) - len(out_labels)
    assert (dropped > 0) == (min_area > 0)   # the filter was exercised, not only the scaling
