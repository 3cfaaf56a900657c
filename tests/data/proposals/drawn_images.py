"""Images drawn by OpenCV (what selective search needs) and a tiny on-disk dataset of them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from detkit.data.base import ImageRecord

# (x1, y1, x2, y2) of the filled rectangles of each image, on a 96 x 128 (h x w) canvas.
OBJECTS = [
    [(10, 12, 50, 60), (70, 20, 118, 50)],
    [(30, 30, 90, 80)],
    [],
]
HEIGHT, WIDTH = 96, 128


def draw_image(boxes: list[tuple[int, int, int, int]], seed: int) -> np.ndarray:
    """A noisy grey background with flat-coloured objects exactly filling ``boxes`` (RGB uint8)."""
    rng = np.random.default_rng(seed)
    image = np.clip(rng.normal(110, 6, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    colours = [(220, 40, 40), (40, 200, 60), (50, 60, 230)]
    for index, (x1, y1, x2, y2) in enumerate(boxes):
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colours[index % 3], thickness=-1)
    return image


def write_dataset(folder: Path, objects=OBJECTS) -> list[ImageRecord]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index, boxes in enumerate(objects):
        path = folder / f"img_{index}.png"
        cv2.imwrite(str(path), cv2.cvtColor(draw_image(boxes, seed=index), cv2.COLOR_RGB2BGR))
        records.append(
            ImageRecord(
                path=path,
                file_name=path.name,
                image_id=100 + index,
                width=WIDTH,
                height=HEIGHT,
                boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                labels=np.ones(len(boxes), dtype=np.int64),
                annotation_file=str(folder / "annotations.json"),
            )
        )
    return records
