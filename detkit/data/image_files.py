"""Reading and checking image files, as users have them: EXIF orientation applied, pixels refused
when there are none or they are not finite.

Every path that reads an image file (training and evaluation datasets, ``detkit.load``'s
Predictor, ``detkit predict``, the proposal search, the dataset check) goes through
:func:`read_image` or, for sizes only, :func:`check_image_file`, so they all agree on what the
picture is. A phone stores a portrait photo as landscape pixels plus an EXIF orientation tag;
viewers, annotation tools that show the photo, detectron2 and Ultralytics all turn it upright, so
detkit does too (``PIL.ImageOps.exif_transpose``): boxes are in the frame the user sees.

Decoding is PIL's, whose ``load()`` raises "image file is truncated" for JPEG, PNG and BMP alike
(OpenCV's decoders disagree across versions: OpenCV 5 refuses a cut JPEG, OpenCV 4 returns it
with the missing part grey); OpenCV decodes only the formats PIL does not know. PIL's
``verify()`` is no substitute: it catches a cut PNG but passes a cut JPEG. Truncation is only seen
when the data is decoded, so ``decode=False`` (headers only) finds missing and unreadable files
and wrong sizes, not truncated ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import cv2
import numpy as np

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

# EXIF orientations that turn the stored pixel grid by 90 degrees (width and height swap).
SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112
_TURNS = {
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "mirrored and rotated 90 degrees",
    6: "rotated 90 degrees clockwise",
    7: "mirrored and rotated 90 degrees",
    8: "rotated 90 degrees counter-clockwise",
}


def orientation_text(orientation: int) -> str:
    """What an EXIF orientation does to the stored pixels, for messages."""
    return f"EXIF orientation {orientation} ({_TURNS.get(orientation, 'unknown')})"


def require_pixels(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` ([H, W] or [H, W, C]) unchanged when it holds at least one pixel and, for float
    arrays, only finite values; else a ``ValueError`` that names ``name`` (a file or "array input #i")."""
    if array.ndim < 2 or array.shape[0] == 0 or array.shape[1] == 0 or array.size == 0:
        shape = "x".join(str(n) for n in array.shape)
        raise ValueError(f"{name} is empty (shape {shape}): an image needs at least one pixel")
    if np.issubdtype(array.dtype, np.floating):
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ValueError(f"{name} holds {bad} NaN or infinite value(s) out of {array.size}: not an image")
    return array


def pil_to_rgb(image: PILImage, name: str) -> np.ndarray:
    """A PIL image, EXIF orientation applied, as a writable RGB uint8 array [H, W, 3].

    16-bit images keep their top 8 bits (as OpenCV reads them), float images are checked for
    NaN/Inf and clipped to 0..255 (as PIL converts them); ``image`` itself is left as it is.
    """
    from PIL import ImageOps

    # Only a turned image is transposed: exif_transpose copies even when there is nothing to do.
    turned = int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1) in _TURNS
    upright = ImageOps.exif_transpose(image) if turned else image
    if upright.mode.startswith("I;16") or upright.mode in ("I", "F"):
        values = require_pixels(np.asarray(upright), name)
        if upright.mode == "F":
            grey = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        else:
            grey = (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        return require_pixels(np.repeat(grey[:, :, None], 3, axis=2), name)
    if upright.mode != "RGB":
        upright = upright.convert("RGB")
    return require_pixels(np.array(upright), name)


def _decode_with_opencv(data: np.ndarray) -> np.ndarray | None:
    """RGB uint8 pixels of a file PIL does not know, EXIF orientation applied (OpenCV's default)."""
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if image is not None else None


def read_image(path: Path | str, *, source: str | None = None) -> np.ndarray:
    """Read an image file as the picture a viewer shows: RGB uint8 [H, W, 3], EXIF orientation
    applied. Errors name the file (and ``source``, the annotation file that lists it)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    where = f" (listed in {source})" if source else ""
    name = f"image file {path}{where}"
    try:
        with Image.open(path) as image:
            return pil_to_rgb(image, name)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}{where}") from None
    except UnidentifiedImageError:
        pass
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot decode {name}: {error or type(error).__name__}") from None
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise OSError(f"cannot read {name}: {error}") from error
    pixels = _decode_with_opencv(data)
    if pixels is None:
        raise ValueError(f"cannot decode {name}: the file is empty, corrupt or not an image")
    return require_pixels(pixels, name)


@dataclass(frozen=True)
class ImageCheck:
    """What checking one image file found: its upright ``(width, height)`` and EXIF
    ``orientation`` when readable, else the problem ``kind`` (``missing_image``,
    ``unreadable_image``, ``truncated_image``, ``non_finite_image``) and ``reason``."""

    size: tuple[int, int] | None
    kind: str | None = None
    reason: str | None = None
    orientation: int = 1

    @property
    def stored_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the stored pixel grid, before the EXIF orientation turns it."""
        if self.size is None or self.orientation not in SWAPPING_ORIENTATIONS:
            return self.size
        return self.size[1], self.size[0]


def _check_with_opencv(path: Path) -> ImageCheck:
    pixels = _decode_with_opencv(np.fromfile(str(path), dtype=np.uint8))
    if pixels is None:
        empty = path.stat().st_size == 0
        reason = (
            "the file is empty" if empty else "not an image, or corrupt: neither PIL nor OpenCV decodes it"
        )
        return ImageCheck(None, "unreadable_image", reason)
    return ImageCheck((int(pixels.shape[1]), int(pixels.shape[0])))


def _orientation(image: PILImage, *, decode: bool) -> int:
    """The EXIF orientation of an opened image. PIL looks for a PNG's eXIf chunk behind the pixel
    data by decoding them all; a headers-only check reads only the chunks before the pixels."""
    if not decode and image.format == "PNG" and "exif" not in image.info:
        return 1
    return int(image.getexif().get(_EXIF_ORIENTATION_TAG, 1) or 1)


def turned_by_exif(file: str | Path | BinaryIO) -> bool:
    """Whether :func:`read_image` turns or mirrors this file's stored pixels (EXIF orientation 2-8),
    read from its headers (a path, or the file's bytes already in memory as a binary stream). False
    for a file PIL does not open (OpenCV reads those as they are)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            return _orientation(image, decode=False) in _TURNS
    except (OSError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
        return False


def check_image_file(path: str | Path, *, decode: bool = True) -> ImageCheck:
    """Check one image file; with ``decode`` all of its pixels are decoded (finds truncated files
    and float images holding NaN or Inf). The size is the upright one :func:`read_image` returns."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        return ImageCheck(None, "missing_image", "image file not found")
    try:
        with Image.open(path) as image:
            orientation = _orientation(image, decode=decode)
            width, height = int(image.size[0]), int(image.size[1])
            if decode:
                image.load()
                if image.mode == "F" and not np.isfinite(np.asarray(image)).all():
                    return ImageCheck(
                        None, "non_finite_image", "the image holds NaN or infinite pixel values"
                    )
    except UnidentifiedImageError:
        return _check_with_opencv(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        text = str(error) or type(error).__name__
        kind = "truncated_image" if "truncat" in text.lower() else "unreadable_image"
        return ImageCheck(None, kind, f"cannot decode the image: {text}")
    if width == 0 or height == 0:
        return ImageCheck(None, "unreadable_image", f"the image is empty ({width}x{height} pixels)")
    if orientation in SWAPPING_ORIENTATIONS:
        width, height = height, width
    return ImageCheck((width, height), orientation=orientation)


def check_image_files(
    paths: Sequence[Path], *, decode: bool = True, workers: int | None = None
) -> list[ImageCheck]:
    """``check_image_file`` for each path, in threads (PIL and OpenCV decode without the GIL)."""
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 32:
        return [check_image_file(path, decode=decode) for path in paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda path: check_image_file(path, decode=decode), paths, chunksize=16))
