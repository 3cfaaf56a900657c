"""Helpers for the tests that plant every kind of data problem in COCO, VOC and YOLO files.

Images are small, written with OpenCV; a "truncated" file is a valid one cut to half its bytes
(its header stays whole, so only decoding finds it); an "unreadable" file is text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detkit.data.validation.problems import Problem

WIDTH, HEIGHT = 64, 48

# A tiny training run: the default experiment (R-FCN on EfficientNet-Lite0) for two steps.
TINY_TRAIN = [
    "data.input_size=96",
    "data.num_workers=0",
    "data.batch_size=2",
    "engine.max_iters=2",
    "engine.vis_images=0",
    "engine.tensorboard=false",
    "scheduler.warmup_iters=1",
]


def _pixels(width: int, height: int, seed: int) -> np.ndarray:
    # Noise: a JPEG of it has a long entropy-coded part, so half the file keeps the whole header.
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_image(path: Path, width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), _pixels(width, height, seed))
    return path


def write_truncated(path: Path, width: int = WIDTH, height: int = HEIGHT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix, _pixels(width, height, 7))
    assert ok
    path.write_bytes(encoded.tobytes()[: len(encoded) // 2])
    return path


def write_unreadable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("this is not an image\n")
    return path


def found(problems: Sequence[Problem]) -> set[tuple[str, str | None, str]]:
    """``(file name, where, kind)`` of each problem, the way the tests list what they planted."""
    return {(Path(p.file).name if p.file else "", p.where, p.kind) for p in problems}


def counted(problems: Sequence[Problem]) -> list[tuple[str, str | None, str]]:
    """The same as a sorted list, to see that nothing is reported twice."""
    return sorted((Path(p.file).name if p.file else "", p.where or "", p.kind) for p in problems)
