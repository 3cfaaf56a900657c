"""Checking image files before anything trains on them: present, decodable, whole, their size.

Training reads images with OpenCV, whose decoders do not agree across versions on a cut-short
file: OpenCV 5 refuses a truncated JPEG, OpenCV 4 returns it with the missing part grey and only
prints a libjpeg warning. So the check decodes with PIL, whose ``load()`` raises "image file is
truncated" for JPEG, PNG and BMP alike, and falls back to OpenCV only for formats PIL does not
know. (PIL's ``verify()`` is no substitute: it catches a cut PNG but passes a cut JPEG.)
Truncation is only seen when the data is decoded, so ``decode=False`` (headers only) finds missing
and unreadable files and wrong sizes, not truncated ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class ImageCheck:
    """What checking one image file found: its ``(width, height)`` when readable, else the problem
    ``kind`` (``missing_image``, ``unreadable_image``, ``truncated_image``) and ``reason``."""

    size: tuple[int, int] | None
    kind: str | None = None
    reason: str | None = None


def _decode_with_opencv(path: Path) -> ImageCheck:
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        reason = "the file is empty" if not data.size else "not an image, or corrupt: neither PIL nor OpenCV decodes it"
        return ImageCheck(None, "unreadable_image", reason)
    return ImageCheck((int(image.shape[1]), int(image.shape[0])))


def check_image_file(path: str | Path, *, decode: bool = True) -> ImageCheck:
    """Check one image file; with ``decode`` all of its pixels are decoded (finds truncated files).

    The size is that of the stored pixel grid (EXIF orientation ignored, as ``read_image`` does).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        return ImageCheck(None, "missing_image", "image file not found")
    try:
        with Image.open(path) as image:
            size = (int(image.size[0]), int(image.size[1]))
            if decode:
                image.load()
    except UnidentifiedImageError:
        return _decode_with_opencv(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        text = str(error) or type(error).__name__
        kind = "truncated_image" if "truncat" in text.lower() else "unreadable_image"
        return ImageCheck(None, kind, f"cannot decode the image: {text}")
    return ImageCheck(size)


def check_image_files(paths: Sequence[Path], *, decode: bool = True, workers: int | None = None) -> list[ImageCheck]:
    """``check_image_file`` for each path, in threads (PIL and OpenCV decode without the GIL)."""
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 32:
        return [check_image_file(path, decode=decode) for path in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: check_image_file(path, decode=decode), paths, chunksize=16))
