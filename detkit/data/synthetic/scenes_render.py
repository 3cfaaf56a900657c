"""The synthetic "scenes" detection task: a second, harder dataset unlike the built-in shapes.

Five object kinds with non-contiguous COCO category ids (``SCENE_CATEGORIES``: 3 star, 7 arrow,
12 heart, 20 digit, 31 checker): five-pointed stars, arrows, hearts, digits 0–9 in cv2's Hershey
fonts, and checkerboard patches. Objects are textured (flat, gradient or striped fills in the
object's own frame, so the texture turns with it), rotated, stretched, anti-aliased and blended
onto cloudy, grained or vignetted backgrounds with a few unlabelled clutter lines. Images are
non-square, each side drawn from ``min_side``..``max_side``; a share of images hold no object;
object sizes mix tiny ones (``tiny_size``, a few pixels) with ones up to ``max_size`` of the
shorter side; later objects may hide up to ``max_occlusion`` of earlier ones, and objects may be
cut by the image border. Every box is the tight integer pixel box ``xyxy`` of the object's visible
pixels (alpha ≥ 0.5 after occlusion). Image ``index`` of a split depends only on (seed, split, index).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from detkit.data.synthetic.boxes import mask_box, pair_iou

# COCO category id → name; ids deliberately not 1..C so that loaders must map them.
SCENE_CATEGORIES: dict[int, str] = {3: "star", 7: "arrow", 12: "heart", 20: "digit", 31: "checker"}
GENERATOR_VERSION = 1  # bump when the drawing changes, so older caches are not reused
SPLIT_CODES = {"train": 0, "val": 1}
_MIN_VISIBLE = 0.5  # an object cut by the border or hidden by others keeps at least this share
_MAX_BOX_IOU = 0.45  # two visible boxes never overlap more (NMS at 0.5 must keep both)
_MAX_TRIES = 30
_HERSHEY_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                  cv2.FONT_HERSHEY_TRIPLEX)  # fmt: skip


@dataclass(frozen=True)
class ScenesParams:
    """Everything that determines the generated data (and its cache folder's hash).

    ``min_side`` / ``max_side``: range of each image side (height and width drawn apart);
    ``tiny_fraction``: share of objects drawn ``tiny_size`` (long side, pixels) instead of
    ``min_size``..``max_size`` (log-uniform); ``max_occlusion``: largest share of an object's
    pixels that later objects may cover.
    """

    num_train: int = 400
    num_val: int = 100
    min_side: int = 240
    max_side: int = 352
    min_size: int = 12
    max_size: int = 200
    tiny_size: tuple[int, int] = (7, 10)
    tiny_fraction: float = 0.08
    max_objects: int = 8
    empty_fraction: float = 0.08
    max_occlusion: float = 0.4
    clutter_lines: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tiny_size", tuple(int(v) for v in self.tiny_size))
        if not 32 <= self.min_side <= self.max_side:
            raise ValueError(f"need 32 <= min_side <= max_side, got {self.min_side}, {self.max_side}")
        if not 4 <= self.tiny_size[0] <= self.tiny_size[1] <= self.min_size <= self.max_size <= self.min_side:
            raise ValueError(
                "need 4 <= tiny_size[0] <= tiny_size[1] <= min_size <= max_size <= min_side, got "
                f"tiny_size={self.tiny_size}, min_size={self.min_size}, max_size={self.max_size}, "
                f"min_side={self.min_side}"
            )
        if self.max_objects < 1 or self.num_train < 0 or self.num_val < 0 or self.clutter_lines < 0:
            raise ValueError("max_objects must be >= 1 and num_train, num_val, clutter_lines >= 0")
        for name in ("tiny_fraction", "empty_fraction", "max_occlusion"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def digest(self) -> str:
        """A short hash of the parameters and the generator version (the cache folder name)."""
        text = json.dumps({"version": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class SceneSample:
    """One generated image: ``image`` [H, W, 3] uint8 RGB; ``boxes`` [N, 4] float32 xyxy with integer
    values; ``category_ids`` [N] int64 (keys of ``SCENE_CATEGORIES``); ``truncated`` [N] bool (cut
    by the image border); ``occluded`` [N] bool (partly hidden by a later object)."""

    image: np.ndarray
    boxes: np.ndarray
    category_ids: np.ndarray
    truncated: np.ndarray
    occluded: np.ndarray


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """float32 [H, W, 3]: multi-octave clouds, a grain of warped bands, or a vignetted flat colour."""
    base = rng.uniform(30, 225, size=3).astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        image = np.broadcast_to(base, (height, width, 3)).copy()
        for cells, amplitude in ((3, 40.0), (7, 20.0), (17, 10.0)):
            noise = rng.uniform(-amplitude, amplitude, size=(cells, cells, 3)).astype(np.float32)
            image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        warp = cv2.resize(rng.uniform(-12, 12, size=(5, 5)).astype(np.float32), (width, height),
                          interpolation=cv2.INTER_CUBIC)  # fmt: skip
        angle = rng.uniform(0, math.pi)
        phase = (xs * math.cos(angle) + ys * math.sin(angle) + warp) * 2 * math.pi / rng.uniform(6, 20)
        image = base + (np.sin(phase) ** 2)[..., None] * rng.uniform(-40, 40, size=3).astype(np.float32)
    else:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        distance = np.hypot(ys - cy, xs - cx) / math.hypot(height, width)
        image = base + (distance * rng.uniform(-120, 120))[..., None]
    for _ in range(int(rng.integers(0, 4))):  # clutter: thin unlabelled lines
        colour = tuple(float(v) for v in rng.uniform(0, 255, size=3))
        start = (int(rng.integers(width)), int(rng.integers(height)))
        end = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.line(image, start, end, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
    return image.astype(np.float32, copy=False)


def _canonical_alpha(kind: str, size: int, stretch: float, rng: np.random.Generator) -> np.ndarray:
    """float32 [size, size] alpha in 0..1 of the object centred on a square canvas (before rotation)."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    half = size / 2
    shift = 4  # cv2 sub-pixel bits
    scale = 1 << shift

    def fill(points: np.ndarray) -> None:
        points = points * np.array([1.0, stretch]) / max(1.0, stretch)  # squash along y (stretch < 1) or x
        vertices = np.round((points * 0.95 * half + half) * scale).astype(np.int32)
        cv2.fillPoly(canvas, [vertices], 255, cv2.LINE_AA, shift)

    if kind == "star":
        inner = rng.uniform(0.38, 0.55)
        angles = -math.pi / 2 + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        fill(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1))
    elif kind == "arrow":
        shaft, head = rng.uniform(0.12, 0.25), rng.uniform(0.4, 0.65)
        neck = 1 - 2 * rng.uniform(0.3, 0.5)
        fill(np.array([[-1, -shaft], [neck, -shaft], [neck, -head], [1, 0], [neck, head], [neck, shaft], [-1, shaft]]))
    elif kind == "heart":
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        fill(np.stack([x / 17, (y + 2.5) / 17], axis=1))
    elif kind == "checker":
        fill(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64))
    else:  # digit: a Hershey glyph, scaled so its ink box fills the canvas
        text = str(int(rng.integers(10)))
        font = _HERSHEY_FONTS[int(rng.integers(len(_HERSHEY_FONTS)))]
        glyph = np.zeros((160, 160), dtype=np.uint8)
        cv2.putText(glyph, text, (30, 130), font, 4.0, 255, int(rng.integers(8, 16)), cv2.LINE_AA)
        ys, xs = np.nonzero(glyph > 127)
        ink = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        factor = 0.95 * size / max(ink.shape) * np.array([1.0, stretch]) / max(1.0, stretch)
        new_w, new_h = max(1, round(ink.shape[1] * factor[0])), max(1, round(ink.shape[0] * factor[1]))
        ink = cv2.resize(ink, (new_w, new_h), interpolation=cv2.INTER_AREA)
        top, left = (size - new_h) // 2, (size - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = ink
    return canvas.astype(np.float32) / 255


def _canonical_colour(kind: str, size: int, rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """float32 [size, size, 3] fill in the object's own frame: checkerboard for checkers; flat,
    gradient or stripes for the others."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    other = np.clip(colour + rng.choice([-1, 1], size=3) * rng.uniform(60, 140, size=3), 0, 255)
    if kind == "checker":
        cells = int(rng.integers(3, 7))
        mask = ((np.floor(xs * cells) + np.floor(ys * cells)) % 2)[..., None]
        return (colour * (1 - mask) + other * mask).astype(np.float32)
    style = rng.integers(3)
    if style == 0:
        return np.broadcast_to(colour.astype(np.float32), (size, size, 3)).copy()
    angle = rng.uniform(0, math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    if style == 1:
        ramp = ((along - along.min()) / max(float(np.ptp(along)), 1e-6))[..., None]
        return (colour + (other - colour) * ramp * 0.6).astype(np.float32)
    stripes = (np.sin(along * 2 * math.pi * rng.uniform(3, 6)) > 0)[..., None]
    return np.where(stripes, colour, colour * 0.6 + other * 0.4).astype(np.float32)


def _place(alpha: np.ndarray, fill: np.ndarray, long_side: float, angle: float, centre: tuple[float, float],
           height: int, width: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Warp the canonical object into the image → (alpha [H, W], colour [H, W, 3], full area in pixels
    had the image been unbounded), scaled so the rotated object's longer box side is ``long_side``."""
    size = alpha.shape[0]
    ys, xs = np.nonzero(alpha >= 0.5)
    cos, sin = math.cos(angle), math.sin(angle)
    rel_x, rel_y = xs + 0.5 - size / 2, ys + 0.5 - size / 2
    rot_x, rot_y = rel_x * cos - rel_y * sin, rel_x * sin + rel_y * cos
    extent = max(np.ptp(rot_x) + 1, np.ptp(rot_y) + 1)
    scale = long_side / extent
    matrix = np.array([[cos, -sin], [sin, cos]]) * scale
    offset = np.array(centre) - matrix @ np.array([size / 2, size / 2])
    affine = np.concatenate([matrix, offset[:, None]], axis=1)
    placed_alpha = cv2.warpAffine(alpha, affine, (width, height), flags=cv2.INTER_LINEAR)
    placed_fill = cv2.warpAffine(fill, affine, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return placed_alpha, placed_fill, float((alpha >= 0.5).sum() * scale * scale)


def generate_scene(params: ScenesParams, split: str, index: int) -> SceneSample:
    """Image ``index`` of ``split`` ("train" or "val"); the same arguments always give the same sample."""
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {tuple(SPLIT_CODES)}, got {split!r}")
    rng = np.random.default_rng([params.seed, SPLIT_CODES[split], index])
    height, width = (
        int(rng.integers(params.min_side, params.max_side + 1)),
        int(rng.integers(params.min_side, params.max_side + 1)),
    )
    image = _background(rng, height, width)
    wanted = 0 if rng.random() < params.empty_fraction else int(rng.integers(1, params.max_objects + 1))
    kinds = list(SCENE_CATEGORIES.items())
    visible: list[np.ndarray] = []  # bool [H, W] per kept object, after later objects cover it
    areas: list[int] = []  # each object's in-image pixel count when it was drawn
    ids: list[int] = []
    truncated: list[bool] = []
    for _ in range(wanted):
        for _ in range(_MAX_TRIES):
            category_id, kind = kinds[int(rng.integers(len(kinds)))]
            if rng.random() < params.tiny_fraction:
                long_side = rng.uniform(params.tiny_size[0], params.tiny_size[1] + 1)
            else:
                top = min(params.max_size, min(height, width) * 0.8)
                long_side = math.exp(rng.uniform(math.log(params.min_size), math.log(top)))
            stretch = math.exp(rng.uniform(-0.35, 0.35))
            # Arrows and checkers turn freely; stars, hearts and digits stay near upright (their cue).
            angle = rng.uniform(-math.pi, math.pi) if kind in ("arrow", "checker") else rng.uniform(-0.35, 0.35)
            canvas = int(np.clip(2 * long_side, 32, 256))
            alpha = _canonical_alpha(kind, canvas, stretch, rng)
            colour = rng.uniform(0, 255, size=3)
            fill = _canonical_colour(kind, canvas, rng, colour)
            centre = (rng.uniform(0, width), rng.uniform(0, height))
            placed_alpha, placed_fill, full_area = _place(alpha, fill, long_side, angle, centre, height, width)
            mask = placed_alpha >= 0.5
            area = int(mask.sum())
            if area == 0 or area < _MIN_VISIBLE * full_area:
                continue
            under = image[mask].mean(axis=0)
            if np.abs(placed_fill[mask].mean(axis=0) - under).max() < 40:
                continue  # too close to the background to be seen
            box = mask_box(mask)
            covered = [v & ~mask for v in visible]
            if any(c.sum() < (1 - params.max_occlusion) * a or c.sum() < _MIN_VISIBLE * a
                   for c, a in zip(covered, areas, strict=True)):  # fmt: skip
                continue
            boxes = [mask_box(c) for c in covered] + [box]
            if any(pair_iou(a, b) > _MAX_BOX_IOU for i, a in enumerate(boxes) for b in boxes[i + 1 :]):
                continue
            image = image * (1 - placed_alpha[..., None]) + placed_fill * placed_alpha[..., None]
            visible = covered + [mask]
            areas.append(area)
            ids.append(category_id)
            truncated.append(area < full_area * 0.97)
            break
    image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.1, 0.8))
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(rng.uniform(0, 6))
    occluded = [int(v.sum()) < a for v, a in zip(visible, areas, strict=True)]
    return SceneSample(
        image=np.clip(np.round(image), 0, 255).astype(np.uint8),
        boxes=np.array([mask_box(v) for v in visible], dtype=np.float32).reshape(-1, 4),
        category_ids=np.array(ids, dtype=np.int64),
        truncated=np.array(truncated, dtype=bool),
        occluded=np.array(occluded, dtype=bool),
    )
