"""Nothing degenerate reaches PyTorch: thousands of random draws through the training pipeline
(bbox-safe crop, flip, colour, scale jitter, letterbox; mosaic and mixup on top), on images of
random sizes with boxes of every awkward kind the loaders let through (thinner than a pixel,
touching the border or each other, the whole image), give only finite boxes with x2 > x1 and
y2 > y1 inside the input; and detectors trained on such targets keep finite losses and gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detkit.data.augment.mixup import MixUp
from detkit.data.augment.mosaic import Mosaic
from detkit.data.augment.transforms import eval_transforms, train_transforms
from detkit.data.base import DetectionDataset, ImageRecord
from detkit.data.collate import collate_detection
from detkit.data.validation.box_checks import BoxChecker
from detkit.data.validation.problems import ProblemLog
from detkit.engine.build import build_model, load_config

THIN = (1e-3, 0.01, 0.3, 1.0, 2.0)  # box sides in pixels that rounding and filters find hard


def random_boxes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Up to 8 boxes, xyxy, the way a loader hands them over: checked and clipped (BoxChecker)."""
    boxes = []
    for _ in range(int(rng.integers(0, 9))):
        kind = int(rng.integers(0, 5))
        if kind == 0:
            boxes.append([0, 0, width, height])
            continue
        side_w = float(rng.choice(THIN)) if kind == 1 else float(rng.uniform(0, width))
        side_h = float(rng.choice(THIN)) if kind in (1, 2) else float(rng.uniform(0, height))
        # Against the left/top border, the right/bottom one, or anywhere.
        x1 = float(rng.choice([0.0, width - side_w, rng.uniform(0, width)]))
        y1 = float(rng.choice([0.0, height - side_h, rng.uniform(0, height)]))
        boxes.append([x1, y1, x1 + side_w, y1 + side_h])
        if kind == 3:  # a neighbour touching its right edge
            boxes.append([x1 + side_w, y1, x1 + 2 * side_w, y1 + side_h])
    raw = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    checked, keep = BoxChecker(ProblemLog("fuzz", "skip")).check(
        raw, np.ones(len(raw), np.int64), width=width, height=height, file="fuzz", locate=lambda i: (None, None)
    )
    return checked[keep]


class RandomImages(DetectionDataset):
    """Images of random sizes (1 to 128 px a side) made in memory, with random boxes."""

    def __init__(self, count: int, seed: int, transforms) -> None:
        rng = np.random.default_rng(seed)
        records = []
        for index in range(count):
            width, height = (int(v) for v in rng.integers(1, 129, size=2))
            boxes = random_boxes(rng, width, height)
            records.append(ImageRecord(
                path=Path(f"random{index}.png"), file_name=f"random{index}.png", image_id=index, width=width,
                height=height, boxes=boxes, labels=rng.integers(1, 4, len(boxes)), annotation_file="memory",
            ))
        super().__init__(records, class_names=["a", "b", "c"], category_ids=[1, 2, 3], transforms=transforms)

    def load(self, index: int) -> tuple[np.ndarray, ImageRecord]:
        record = self.records[index]
        pixels = np.random.default_rng(index).integers(0, 256, (record.height, record.width, 3), dtype=np.uint8)
        return pixels, record


def degenerate(target: dict, size: int) -> int:
    boxes = target["boxes"]
    bad = ~torch.isfinite(boxes).all(dim=1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    bad |= (boxes[:, :2] < 0).any(dim=1) | (boxes[:, 2:] > size).any(dim=1)
    return int(bad.sum())


PIPELINES = [  # (input size, train_transforms keywords, wrapper)
    (64, {"crop": 1.0, "hflip": 0.5, "scale_jitter": 0.5, "min_area": 0.0, "min_visibility": 0.0}, None),
    (96, {"crop": 0.5, "hflip": 0.5}, None),  # the defaults' filters (4 px², 30 % visible)
    (32, {"crop": 1.0, "hflip": 1.0, "scale_jitter": 0.3, "min_area": 0.0, "min_visibility": 0.0}, "mosaic"),
    (64, {"crop": 0.3, "scale_jitter": 0.2}, "mosaic+mixup"),
    (48, None, None),  # evaluation: the letterbox alone, no filters at all
]


def test_thousands_of_random_draws_give_no_degenerate_box() -> None:
    torch.manual_seed(0)
    np.random.seed(0)  # mosaic and mixup draw from numpy's global generator
    draws = boxes_out = boxes_in = 0
    for number, (size, keywords, wrapper) in enumerate(PIPELINES):
        transforms = eval_transforms(size) if keywords is None else train_transforms(size, color_jitter=0.2, **keywords)
        data = RandomImages(250, seed=number, transforms=transforms)
        if wrapper is not None:
            data = Mosaic(data, p=1.0 if wrapper == "mosaic" else 0.5)
        if wrapper == "mosaic+mixup":
            data = MixUp(data, p=1.0)
        for _ in range(2):
            for index in range(len(data)):
                image, target = data[index]
                assert image.shape == (3, size, size) and torch.isfinite(image).all()
                assert degenerate(target, size) == 0, (wrapper, size, index, target["boxes"])
                assert len(target["labels"]) == len(target["boxes"]) and bool((target["labels"] >= 1).all())
                draws += 1
                boxes_out += len(target["boxes"])
        boxes_in += sum(len(r.boxes) for r in data.records)
    assert draws == 2500 and boxes_out > 4000 and boxes_in > 2500  # the draws did carry boxes


@pytest.mark.parametrize("experiment", ["faster_rcnn_mobilenet_v1_shapes", "ssd_mobilenet_v1_shapes",
                                        "yolov3_mobilenet_v1_shapes"])
def test_losses_stay_finite_on_such_targets(experiment: str) -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    size = 64
    data = Mosaic(RandomImages(12, seed=7, transforms=train_transforms(size, min_area=0.0, min_visibility=0.0)), p=0.5)
    model = build_model(load_config([f"config={experiment}"]), num_classes=3).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    thinnest = float("inf")
    for step in range(3):
        images, targets = collate_detection([data[4 * step + i] for i in range(4)])
        for target in targets:
            sides = target["boxes"][:, 2:] - target["boxes"][:, :2]
            thinnest = min(thinnest, float(sides.min()) if len(sides) else thinnest)
        losses = model(images, targets)
        total = sum(v for k, v in losses.items() if k.startswith("loss_"))
        assert all(torch.isfinite(v) for v in losses.values()), (step, losses)
        optimizer.zero_grad()
        total.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), step
        optimizer.step()
    assert thinnest < 1.0  # sub-pixel boxes were among the targets
