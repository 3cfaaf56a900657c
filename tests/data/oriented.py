"""Images as phones and scientific cameras write them, for the tests of every reading path.

A phone stores a portrait photo as landscape pixels plus an EXIF orientation tag: here 200x120
stored pixels, red on the left half and blue on the right, tagged 6 ("rotate 90 degrees
clockwise to view"), which a viewer shows as a 120x200 picture, red on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

STORED_WIDTH, STORED_HEIGHT = 200, 120
UPRIGHT_WIDTH, UPRIGHT_HEIGHT = STORED_HEIGHT, STORED_WIDTH
RED, BLUE = (230, 20, 20), (20, 20, 230)
# The red object in the upright picture (top half), xyxy pixels.
UPRIGHT_BOX = [10.0, 10.0, 110.0, 90.0]

# What each EXIF orientation asks a viewer to do to the stored pixels (numpy on [H, W, C]).
VIEWED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, k=1),
}


def stored_pixels(seed: int | None = None) -> np.ndarray:
    """The stored (landscape) pixels: red left half, blue right half; with ``seed``, noise on top so
    that every orientation gives a different array."""
    pixels = np.empty((STORED_HEIGHT, STORED_WIDTH, 3), np.uint8)
    pixels[:, : STORED_WIDTH // 2] = RED
    pixels[:, STORED_WIDTH // 2 :] = BLUE
    if seed is not None:
        noise = np.random.default_rng(seed).integers(0, 20, pixels.shape, dtype=np.uint8)
        pixels = pixels + noise
    return pixels


def write_oriented(path: Path, orientation: int = 6, pixels: np.ndarray | None = None) -> Path:
    """``pixels`` (default :func:`stored_pixels`) saved with an EXIF orientation tag (JPEG or PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = Image.fromarray(stored_pixels() if pixels is None else pixels)
    image.save(path, exif=exif, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
    return path


def write_nan_tiff(path: Path, width: int = 40, height: int = 30) -> Path:
    """A float (mode F) TIFF, as scientific cameras write, with one NaN pixel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.full((height, width), 100.0, np.float32)
    values[3, 4] = np.nan
    Image.fromarray(values, mode="F").save(path)
    return path


def write_coco(
    root: Path,
    images: dict[str, tuple[int, int]],
    boxes: dict[str, list[float]] | None = None,
    class_names: tuple[str, ...] = ("thing",),
) -> Path:
    """A COCO file ``root/ann.json`` listing ``images`` ({file name: annotated (width, height)}),
    each with one box of the first class (xyxy, default :data:`UPRIGHT_BOX`); the images live in
    ``root/images``."""
    boxes = boxes or {}
    entries, annotations = [], []
    for number, (name, (width, height)) in enumerate(images.items(), start=1):
        entries.append({"id": number, "file_name": name, "width": width, "height": height})
        x1, y1, x2, y2 = boxes.get(name, UPRIGHT_BOX)
        annotations.append({"id": number, "image_id": number, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})  # fmt: skip
    path = root / "ann.json"
    categories = [{"id": i, "name": n} for i, n in enumerate(class_names, 1)]
    path.write_text(json.dumps({"images": entries, "annotations": annotations, "categories": categories}))
    return path


def mean_colour(pixels: np.ndarray) -> np.ndarray:
    return pixels.reshape(-1, 3).mean(axis=0)
