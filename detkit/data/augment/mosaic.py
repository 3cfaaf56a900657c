"""Mosaic augmentation (YOLOv4, Bochkovskiy et al., 2020) as a training-dataset wrapper.

With probability ``p`` an item is four images on one canvas: the canvas is ``2 s × 2 s`` (``s`` =
``tile_size``, by default the dataset's input size), a centre point is drawn in its middle half,
and the item's image and three random others, each resized so that its longer side is ``s``, meet
at that point (top-left, top-right, bottom-left, bottom-right), cut where they leave the canvas.
Boxes move with their image; a box cut down to less than ``min_visibility`` of its area, or
narrower / lower than ``min_size`` pixels, is dropped. The canvas then goes through the dataset's
own transform (letterbox, flips, colour), so the item has the usual input size: more objects,
more scales and more context per image, which helps the grid detectors most.

Training only: evaluation needs each image on its own. The wrapper keeps the dataset's interface
(``class_names``, ``records``, ...) so the engine sees no difference.
"""

from __future__ import annotations

import cv2
import numpy as np

from detkit.data.augment.wrapper import DatasetWrapper
from detkit.data.base import DetectionDataset, ImageRecord

FILL = 114  # grey, the usual mosaic background


class Mosaic(DatasetWrapper):
    """``Mosaic(dataset, p=1.0)``: ``dataset`` a detkit ``DetectionDataset`` (with its training transform)."""

    def __init__(
        self,
        dataset: DetectionDataset,
        *,
        p: float = 1.0,
        tile_size: int | None = None,
        min_visibility: float = 0.3,
        min_size: float = 2.0,
    ) -> None:
        if not isinstance(dataset, DetectionDataset):
            raise TypeError(f"Mosaic needs a detkit dataset (records + transform), got {type(dataset).__name__}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"mosaic probability p must be in [0, 1], got {p}")
        super().__init__(dataset)
        self.p = float(p)
        self.tile_size = tile_size
        self.min_visibility = float(min_visibility)
        self.min_size = float(min_size)

    def __getitem__(self, index: int):
        if self.p < 1.0 and np.random.random() >= self.p:
            return self.dataset[index]
        others = np.random.randint(0, len(self.dataset), size=3).tolist()
        size = self.tile_size or self._input_size()
        centre = np.random.uniform(0.5 * size, 1.5 * size, size=2)
        canvas, record = self.compose([index, *others], size, (float(centre[0]), float(centre[1])))
        return self.dataset.transform_item(canvas, record)

    def compose(self, indices: list[int], size: int, centre: tuple[float, float]) -> tuple[np.ndarray, ImageRecord]:
        """The ``[2 size, 2 size, 3]`` canvas of the four images ``indices`` meeting at ``centre``
        (x, y), and a record of their surviving boxes in canvas pixels (``image_id`` and file of
        the first image)."""
        cx, cy = round(centre[0]), round(centre[1])
        canvas = np.full((2 * size, 2 * size, 3), FILL, dtype=np.uint8)
        boxes, labels, crowd, difficult = [], [], [], []
        first: ImageRecord | None = None
        for quadrant, index in enumerate(indices):
            image, record = self.dataset.load(index)
            first = first or record
            scale = size / max(record.height, record.width)
            width, height = max(1, round(record.width * scale)), max(1, round(record.height * scale))
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            # Where the image sits on the canvas: its corner at the centre, growing away from it.
            x0 = cx - width if quadrant in (0, 2) else cx
            y0 = cy - height if quadrant in (0, 1) else cy
            left, top = max(x0, 0), max(y0, 0)
            right, bottom = min(x0 + width, 2 * size), min(y0 + height, 2 * size)
            canvas[top:bottom, left:right] = image[top - y0 : bottom - y0, left - x0 : right - x0]
            moved = record.boxes * np.float32(scale) + np.array([x0, y0, x0, y0], dtype=np.float32)
            clipped = np.stack(
                (moved[:, 0].clip(left, right), moved[:, 1].clip(top, bottom),
                 moved[:, 2].clip(left, right), moved[:, 3].clip(top, bottom)), axis=1,
            ).reshape(-1, 4)
            keep = self._visible(moved, clipped)
            boxes.append(clipped[keep])
            labels.append(record.labels[keep])
            crowd.append(record.iscrowd[keep] if record.iscrowd is not None else np.zeros(int(keep.sum()), bool))
            difficult.append(
                record.difficult[keep] if record.difficult is not None else np.zeros(int(keep.sum()), bool)
            )
        assert first is not None
        combined = ImageRecord(
            path=first.path,
            file_name=first.file_name,
            image_id=first.image_id,
            width=2 * size,
            height=2 * size,
            boxes=np.concatenate(boxes).astype(np.float32).reshape(-1, 4),
            labels=np.concatenate(labels).astype(np.int64),
            annotation_file=f"mosaic of {first.annotation_file}",
            iscrowd=np.concatenate(crowd) if first.iscrowd is not None else None,
            difficult=np.concatenate(difficult) if first.difficult is not None else None,
        )
        return canvas, combined

    def _visible(self, moved: np.ndarray, clipped: np.ndarray) -> np.ndarray:
        area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        widths, heights = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        left = widths * heights
        return (widths >= self.min_size) & (heights >= self.min_size) & (left >= self.min_visibility * area)

    def _input_size(self) -> int:
        size = getattr(self.dataset.transforms, "input_size", None)
        if size is None:
            raise ValueError("Mosaic: give tile_size, or a dataset whose transform has an input_size")
        return int(size)
