"""The synthetic "shapes" detection task: flat-coloured shapes on textured, noisy backgrounds.

Five classes (``SHAPE_CLASSES``: circle, square, triangle, plus, ring; labels 1..5) of mildly
stretched and rotated shapes whose boxes span ``min_size``..``max_size`` pixels (log-uniform,
so small objects are as common as large ones), 1..``max_objects`` per image, a share of images
without objects, some objects cut by the image border, overlaps bounded so that every object
keeps most of its pixels and no two boxes overlap much. Every box is the tight integer pixel box
of the object's visible pixels. Image ``index`` of a split depends only on (seed, split, index).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from detkit.data.synthetic.boxes import mask_box, pair_iou

SHAPE_CLASSES = ("circle", "square", "triangle", "plus", "ring")
# Bump when the drawing changes, so that caches made by older code are not reused.
GENERATOR_VERSION = 1
SPLIT_CODES = {"train": 0, "val": 1}
_SUBPIXEL_BITS = 4  # cv2 drawing with 1/16-pixel vertex precision
_MIN_BORDER_VISIBLE = 0.45  # an object cut by the border keeps at least this share of its pixels
_MAX_BOX_IOU = 0.4  # two boxes never overlap more: NMS at 0.5 must not merge true objects
_MAX_TRIES = 40


@dataclass(frozen=True)
class ShapesParams:
    """Everything that determines the generated data (and the cache folder's hash).

    ``image_size`` is (height, width) in pixels; ``min_size`` / ``max_size`` bound the longer side
    of an object's box before border cuts; ``max_occlusion`` is the largest share of an object's
    pixels later objects may cover; ``pixel_noise`` the largest Gaussian noise sigma (grey levels).
    """

    image_size: tuple[int, int] = (160, 160)
    num_train: int = 1000
    num_val: int = 200
    min_size: int = 12
    max_size: int = 90
    max_objects: int = 6
    empty_fraction: float = 0.07
    border_fraction: float = 0.15
    max_occlusion: float = 0.3
    pixel_noise: float = 6.0
    seed: int = 0
    image_format: str = "jpg"

    def __post_init__(self) -> None:
        size = self.image_size
        size = (int(size), int(size)) if isinstance(size, int | float) else tuple(int(v) for v in size)
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"image_size must be an int or (height, width), each >= 16, got {self.image_size}")
        object.__setattr__(self, "image_size", size)
        if not 6 <= self.min_size <= self.max_size <= min(size):
            raise ValueError(
                f"need 6 <= min_size <= max_size <= min(image_size): got min_size={self.min_size}, "
                f"max_size={self.max_size}, image_size={size}"
            )
        if self.max_objects < 1 or self.num_train < 0 or self.num_val < 0:
            raise ValueError("max_objects must be >= 1 and num_train, num_val >= 0")
        for name in ("empty_fraction", "border_fraction", "max_occlusion"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.image_format not in ("jpg", "png"):
            raise ValueError(f"image_format must be 'jpg' or 'png', got {self.image_format!r}")

    def digest(self) -> str:
        """A short hash of the parameters and the generator version (the cache folder name)."""
        text = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class ShapesSample:
    """One generated image: ``image`` [H, W, 3] uint8 RGB; ``boxes`` [N, 4] float32 xyxy with
    integer values; ``labels`` [N] int64 in 1..5; ``masks`` [N, H, W] bool visible pixels;
    ``colors`` [N, 3] uint8; ``truncated`` [N] bool (cut by the image border)."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    colors: np.ndarray
    truncated: np.ndarray


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A float32 [H, W, 3] texture: a gradient, stripes or blotches, with a faint second layer."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base, other = rng.uniform(20, 235, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    kind = rng.integers(3)
    if kind == 0:  # linear gradient between two colours
        ramp = (along - along.min()) / max(float(np.ptp(along)), 1.0)
        image = base + (other - base) * ramp[..., None] * rng.uniform(0.3, 1.0)
    elif kind == 1:  # stripes, soft or hard
        wave = np.sin(2 * math.pi * along / rng.uniform(5, 28) + rng.uniform(0, 2 * math.pi))
        if rng.random() < 0.5:
            wave = np.sign(wave)
        image = base + wave[..., None] * rng.uniform(10, 35, size=3).astype(np.float32)
    else:  # smooth colour blotches
        cells = int(rng.integers(2, 7))
        small = rng.uniform(-45, 45, size=(cells, cells, 3)).astype(np.float32)
        image = base + cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    wave = np.sin(2 * math.pi * (xs * rng.normal() + ys * rng.normal()) / rng.uniform(4, 16))
    return (image + wave[..., None] * rng.uniform(0, 8)).astype(np.float32, copy=False)


def _outline(kind: str, long_side: float, ratio: float, angle: float) -> list[np.ndarray] | tuple[float, float]:
    """Polygons (vertex arrays relative to the centre) scaled so the rotated box's longer side is
    ``long_side``; for circle/ring the ellipse's half-axes instead."""
    cos, sin = math.cos(angle), math.sin(angle)
    if kind in ("circle", "ring"):
        # Extents of a rotated ellipse with half-axes (1, ratio): sqrt(a^2 cos^2 + b^2 sin^2).
        half_w = math.hypot(cos, ratio * sin)
        half_h = math.hypot(sin, ratio * cos)
        unit = long_side / (2 * max(half_w, half_h))
        return unit, unit * ratio
    if kind == "square":
        parts = [[(-1, -ratio), (1, -ratio), (1, ratio), (-1, ratio)]]
    elif kind == "triangle":
        parts = [[(0, -ratio), (1, ratio), (-1, ratio)]]
    else:  # plus: a horizontal and a vertical bar
        bar = 0.36
        parts = [[(-1, -bar * ratio), (1, -bar * ratio), (1, bar * ratio), (-1, bar * ratio)],
                 [(-bar, -ratio), (bar, -ratio), (bar, ratio), (-bar, ratio)]]
    rotation = np.array([[cos, -sin], [sin, cos]])
    polygons = [np.array(part, dtype=np.float64) @ rotation.T for part in parts]
    points = np.concatenate(polygons)
    extent = max(np.ptp(points[:, 0]), np.ptp(points[:, 1]))
    return [p * (long_side / extent) for p in polygons]


def _draw_shape(kind: str, outline, centre: tuple[float, float], angle: float, height: int, width: int) -> np.ndarray:
    """Bool [H, W] mask of the shape's pixels inside the image; shapes may extend past the border."""
    scale = 1 << _SUBPIXEL_BITS
    mask = np.zeros((height, width), dtype=np.uint8)
    cx, cy = centre
    if kind in ("circle", "ring"):
        half_w, half_h = outline
        fixed_centre = (round(cx * scale), round(cy * scale))
        cv2.ellipse(mask, fixed_centre, (round(half_w * scale), round(half_h * scale)), math.degrees(angle),
                    0, 360, 1, -1, cv2.LINE_8, _SUBPIXEL_BITS)
        if kind == "ring":
            cv2.ellipse(mask, fixed_centre, (round(half_w * 0.55 * scale), round(half_h * 0.55 * scale)),
                        math.degrees(angle), 0, 360, 0, -1, cv2.LINE_8, _SUBPIXEL_BITS)
    else:
        for polygon in outline:  # one call per polygon: a single call would leave overlaps unfilled
            vertices = np.round((polygon + (cx, cy)) * scale).astype(np.int32)
            cv2.fillPoly(mask, [vertices], 1, cv2.LINE_8, _SUBPIXEL_BITS)
    return mask.astype(bool)


def _pick_colour(rng: np.random.Generator, background: np.ndarray, mask: np.ndarray, neighbours: list[np.ndarray]):
    """The most distinct of a few random colours from the background under ``mask`` and nearby objects."""
    references = [background[mask].mean(axis=0)] + neighbours
    candidates = rng.uniform(0, 255, size=(8, 3))
    distance = np.min([np.linalg.norm(candidates - r, axis=1) for r in references], axis=0)
    return np.round(candidates[int(np.argmax(distance))]).astype(np.uint8)


def generate_sample(params: ShapesParams, split: str, index: int) -> ShapesSample:
    """Image ``index`` of ``split`` ("train" or "val"); the same arguments always give the same sample."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {tuple(SPLIT_CODES)}, got {split!r}")
    rng = np.random.default_rng([params.seed, SPLIT_CODES[split], index])
    height, width = params.image_size
    background = _background(rng, height, width)
    wanted = 0 if rng.random() < params.empty_fraction else int(rng.integers(1, params.max_objects + 1))
    kept_area: list[int] = []  # each object's in-image pixel count before any occlusion
    visible: list[np.ndarray] = []
    labels: list[int] = []
    colours: list[np.ndarray] = []
    truncated: list[bool] = []
    min_visible_side = max(4.0, params.min_size / 2)
    for _ in range(wanted):
        for _ in range(_MAX_TRIES):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            kind = SHAPE_CLASSES[label]
            long_side = math.exp(rng.uniform(math.log(params.min_size), math.log(params.max_size)))
            # A triangle stays upright (its class cue) but may be tall or squat; the others turn freely.
            ratio = rng.uniform(0.7, 1.4) if kind == "triangle" else rng.uniform(0.7, 1.0)
            if kind in ("circle", "ring"):
                angle = rng.uniform(-math.pi, math.pi)
            else:
                angle = math.radians(rng.uniform(-15, 15))
                if kind != "triangle" and rng.random() < 0.5:
                    angle += math.pi / 2
            outline = _outline(kind, long_side, ratio, angle)
            cut = rng.random() < params.border_fraction
            margin = -0.25 * long_side if cut else long_side / 2 + 1
            centre = (
                rng.uniform(margin, max(margin, width - margin)),
                rng.uniform(margin, max(margin, height - margin)),
            )
            mask = _draw_shape(kind, outline, centre, angle, height, width)
            area = int(mask.sum())
            if area == 0:
                continue
            box = mask_box(mask)
            full_area = area
            if box[0] == 0 or box[1] == 0 or box[2] == width or box[3] == height:
                pad = math.ceil(long_side) + 2  # redraw on a canvas large enough for the whole shape
                full_area = int(_draw_shape(kind, outline, (centre[0] + pad, centre[1] + pad), angle,
                                            height + 2 * pad, width + 2 * pad).sum())
            if area < _MIN_BORDER_VISIBLE * full_area:
                continue
            if min(box[2] - box[0], box[3] - box[1]) < min_visible_side:
                continue
            occluded = [v & ~mask for v in visible]
            if any(
                o.sum() < max(1.0, (1 - params.max_occlusion) * a) for o, a in zip(occluded, kept_area, strict=True)
            ):
                continue
            others = [mask_box(o) for o in occluded]
            if any(pair_iou(box, other) > _MAX_BOX_IOU for other in others):
                continue
            if any(pair_iou(a, b) > _MAX_BOX_IOU for i, a in enumerate(others) for b in others[i + 1:]):
                continue
            neighbours = [c for c, other in zip(colours, others, strict=True) if pair_iou(box, other) > 0]
            colours.append(_pick_colour(rng, background, mask, neighbours))
            visible = occluded + [mask]
            kept_area.append(area)
            labels.append(label + 1)
            truncated.append(area < full_area)
            break

    image = background
    for mask, colour in zip(visible, colours, strict=True):
        image[mask] = colour
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(rng.uniform(0, params.pixel_noise))
    masks = np.array(visible, dtype=bool).reshape(-1, height, width)
    return ShapesSample(
        image=np.clip(np.round(image), 0, 255).astype(np.uint8),
        boxes=np.array([mask_box(m) for m in masks], dtype=np.float32).reshape(-1, 4),
        labels=np.array(labels, dtype=np.int64),
        masks=masks,
        colors=np.array(colours, dtype=np.uint8).reshape(-1, 3),
        truncated=np.array(truncated, dtype=bool),
    )
