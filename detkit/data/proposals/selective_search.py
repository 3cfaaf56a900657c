"""Selective search (Uijlings et al., 2013) region proposals through OpenCV's ``cv2.ximgproc``.

R-CNN and Fast R-CNN score these class-agnostic boxes instead of sliding windows. OpenCV returns
``(x, y, w, h)`` integer rectangles of the image it searched, the most promising first; this
module turns them into ``xyxy`` float32 boxes of the stored image, drops tiny and duplicate boxes
and keeps the first ``max_proposals``.

Strategies (OpenCV's presets): ``single`` (one graph segmentation, one colour space, all four
similarities), ``fast`` (2 colour spaces × 2 k values, 2 similarity sets) and ``quality``
(5 colour spaces × 4 k values, 4 similarity sets). Their costs on a 500×375 image, one thread:
about 0.2 s, 1 s and 4 s for roughly 300, 1,400 and 5,000 boxes.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import cv2
import numpy as np

from detkit.data.proposals.opencv_contrib import ximgproc

logger = logging.getLogger(__name__)

Strategy = Literal["single", "fast", "quality"]
STRATEGIES: tuple[str, ...] = ("single", "fast", "quality")
# Bump when the post-processing below changes, so that cached proposals made by older code go stale.
ALGORITHM_VERSION = 1


@dataclass(frozen=True)
class SelectiveSearchParams:
    """What determines the proposals of an image (and therefore keys the cache).

    ``strategy``: ``single`` | ``fast`` | ``quality``. ``search_size``: the longest image side is
    resized to this many pixels before the search (``None``: search the stored image); small
    values are faster and find fewer small regions. ``max_proposals``: keep the first (best
    ranked) boxes. ``min_size``: boxes narrower or lower than this many stored-image pixels are
    dropped. ``duplicate_iou``: boxes overlapping an earlier (better ranked) box by more than this
    IoU are dropped; 1.0 drops exact duplicates only. ``base_k`` / ``inc_k`` / ``sigma``: the
    graph segmentation's parameters (``None``: OpenCV's defaults; ``inc_k`` is unused by ``single``).
    ``seed``: OpenCV ranks regions with C's ``rand()``; seeding it before each search makes the
    proposals of an image reproducible.
    """

    strategy: Strategy = "fast"
    search_size: int | None = 500
    max_proposals: int = 2000
    min_size: float = 4.0
    duplicate_iou: float = 1.0
    base_k: int | None = None
    inc_k: int | None = None
    sigma: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"selective search strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.search_size is not None and int(self.search_size) < 16:
            raise ValueError(f"search_size must be at least 16 pixels (or None), got {self.search_size}")
        if int(self.max_proposals) < 1:
            raise ValueError(f"max_proposals must be positive, got {self.max_proposals}")
        if float(self.min_size) < 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if not 0.0 < float(self.duplicate_iou) <= 1.0:
            raise ValueError(f"duplicate_iou must be in (0, 1], got {self.duplicate_iou}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> SelectiveSearchParams:
        """From already filtered keywords, with YAML/CLI numbers coerced to the fields' types (so
        ``min_size=6`` and ``min_size=6.0`` key the same cache folder)."""
        values = dict(options)
        for name, kind in (("max_proposals", int), ("min_size", float), ("duplicate_iou", float), ("seed", int)):
            if name in values:
                values[name] = kind(values[name])
        if values.get("search_size") is not None:
            values["search_size"] = int(values["search_size"])
        return cls(**values)

    def key(self) -> str:
        """A short stable hash of every parameter, the OpenCV version and the algorithm version."""
        payload = dict(asdict(self), opencv=cv2.__version__, algorithm=ALGORITHM_VERSION)
        text = json.dumps(payload, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def describe(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in asdict(self).items())


def _configure(search, params: SelectiveSearchParams) -> None:
    # OpenCV's presets take optional positional arguments; pass only the ones the user set.
    if params.strategy == "single":
        args = [params.base_k, params.sigma]
        method = search.switchToSingleStrategy
    else:
        args = [params.base_k, params.inc_k, params.sigma]
        method = (
            search.switchToSelectiveSearchFast
            if params.strategy == "fast"
            else search.switchToSelectiveSearchQuality
        )
    defaults = {"single": (200, 0.8), "fast": (150, 150, 0.8), "quality": (150, 150, 0.8)}[params.strategy]
    method(*[default if value is None else value for value, default in zip(args, defaults, strict=True)])


def _seed_c_rand(seed: int) -> None:
    try:
        ctypes.CDLL(None).srand(ctypes.c_uint(seed))
    except (OSError, AttributeError, TypeError):  # no C library handle (e.g. Windows): ranks stay random
        logger.debug("cannot seed the C library's rand(); selective search ranks are not reproducible")


def selective_search(
    image: np.ndarray, params: SelectiveSearchParams = SelectiveSearchParams()
) -> np.ndarray:
    """Proposals for one image.

    ``image``: ``[H, W, 3]`` uint8 RGB (a grey ``[H, W]`` image is accepted too). Returns
    ``boxes: [P, 4]`` float32 xyxy in the image's pixels, inside ``[0, W] × [0, H]``, best ranked
    first, ``P <= params.max_proposals``.
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"selective_search needs an [H, W, 3] uint8 image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    scale = 1.0
    if params.search_size is not None and max(height, width) != int(params.search_size):
        scale = int(params.search_size) / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=interpolation)
    search = ximgproc("selective search").segmentation.createSelectiveSearchSegmentation()
    # OpenCV works in BGR; the colour-space strategies (HSV, Lab, ...) depend on the channel order.
    search.setBaseImage(np.ascontiguousarray(image[:, :, ::-1]))
    _configure(search, params)
    _seed_c_rand(params.seed)
    rects = np.asarray(search.process(), dtype=np.int64).reshape(-1, 4)
    return postprocess_rects(
        rects,
        scale=(width / image.shape[1], height / image.shape[0]),
        image_size=(height, width),
        params=params,
    )


def postprocess_rects(
    rects: np.ndarray,
    *,
    scale: tuple[float, float],
    image_size: tuple[int, int],
    params: SelectiveSearchParams,
) -> np.ndarray:
    """OpenCV ``rects: [M, 4]`` (x, y, w, h) of the searched image → ``[P, 4]`` float32 xyxy boxes
    of the stored image: exact duplicates, then near duplicates (``duplicate_iou``) and boxes under
    ``min_size`` removed, rank order kept, capped at ``max_proposals``.

    ``scale``: (stored width / searched width, stored height / searched height);
    ``image_size``: (height, width) of the stored image.
    """
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    # Exact duplicates (the strategies often find the same region): keep the first occurrence.
    _, first = np.unique(rects, axis=0, return_index=True)
    rects = rects[np.sort(first)]
    sx, sy = scale
    height, width = image_size
    boxes = np.stack(
        (
            rects[:, 0] * sx,
            rects[:, 1] * sy,
            (rects[:, 0] + rects[:, 2]) * sx,
            (rects[:, 1] + rects[:, 3]) * sy,
        ),
        axis=1,
    ).astype(np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    large = ((boxes[:, 2] - boxes[:, 0]) >= params.min_size) & (
        (boxes[:, 3] - boxes[:, 1]) >= params.min_size
    )
    large &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes = boxes[large]
    if params.duplicate_iou < 1.0 and len(boxes) > 1:
        # NMS with the rank as the score keeps the better ranked box of every near-duplicate pair.
        # torch is imported only here (the default, duplicate_iou=1.0, never needs it), so the
        # proposal tool and its worker processes start without torch's import time.
        import torch
        from torchvision.ops import nms

        rank_scores = torch.linspace(1.0, 0.0, len(boxes))
        keep = nms(torch.from_numpy(boxes), rank_scores, params.duplicate_iou).sort().values.numpy()
        boxes = boxes[keep]
    return np.ascontiguousarray(boxes[: params.max_proposals])
