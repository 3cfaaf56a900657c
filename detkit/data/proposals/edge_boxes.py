"""Edge Boxes (Zitnick & Dollár, ECCV 2014) region proposals through OpenCV's ``cv2.ximgproc``.

Edge Boxes scores a box by the edges it wholly contains: edge pixels are grouped into segments of
similar orientation, segments that cross the box's border (and those strongly connected to them)
are discounted, and what is left, normalised by the box's perimeter, is its objectness. A sliding
search over positions, sizes and aspect ratios, refinement of the best boxes and a greedy NMS
give the proposals, best scored first.

Which edges. The paper (and OpenCV's example) feed it the structured random-forest edges of
Dollár & Zitnick, whose trained model file ships with no package, so detkit computes its own:
the image (as float RGB) is Gaussian-smoothed (``edge_sigma``), each colour channel is
differentiated with 3×3 Sobel filters, and each pixel takes the gradient of its strongest
channel (a red-on-grey boundary is as strong as a dark-on-light one). The magnitude is divided
by the image's largest one, so ``edge_min_mag`` and the segment thresholds are relative to the
image's strongest boundary, as they are to the forest's boundary probabilities (but never by less
than a sharp step of ``min_contrast`` gives: an image of noise alone would otherwise get edges as
strong as real boundaries everywhere, and many slow, meaningless boxes). The map is thinned to
one pixel by non-maximum suppression along the gradient (a pixel stays when it beats its
neighbour behind and at least matches its neighbour ahead). Plain gradients fire on texture as
well as on object boundaries, so on cluttered photographs they rank boxes worse than the learnt
edges would; on the flat-coloured shapes and drawn scenes here they find the boundaries that
matter.

Orientation convention (read from OpenCV's ``edgeboxes.cpp`` and ``structured_edge_detection.cpp``):
the angle of the edge's normal, i.e. of the image gradient, ``atan2(dI/dy, dI/dx)`` with x to the
right and y down, folded into ``[0, pi)``; OpenCV's ``computeOrientation`` measures the same
angle (from the edge map's second derivatives), and its ``edgesNms`` steps along ``(cos, sin)``
of it, as the thinning here does.

Box convention: OpenCV returns ``(x, y, w, h)`` whose left/top is the 1-based index of the
box's first edge pixel (the MATLAB original's convention) and whose right/bottom edge pixel is
``w`` / ``h`` pixels further. Those edge pixels sit on the boundary, so the box runs between
their centres: ``x1 = x - 0.5``, ``x2 = x + w - 0.5`` in continuous 0-based pixels.

Small images: the search steps and OpenCV's integer box arithmetic are coarse at 160 px, so an
image whose longer side is under ``upscale_to`` is enlarged to it first (measured on the shapes
validation images at ~280 boxes per image: recall@0.7 0.84 as stored, 0.95 at 2x).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import ClassVar

import cv2
import numpy as np

from detkit.data.proposals.opencv_contrib import ximgproc

# Bump when the edge map or the post-processing below changes, so cached proposals go stale.
ALGORITHM_VERSION = 1


@dataclass(frozen=True)
class EdgeBoxesParams:
    """What determines the Edge Boxes proposals of an image (and therefore keys the cache).

    Edge map: ``upscale_to`` (an image whose longer side is shorter is enlarged to this many
    pixels before the edges are computed; never shrunk; ``None``: as stored), ``edge_sigma``
    (the Gaussian smoothing before the Sobel filters, search-image pixels; 0: none) and
    ``min_contrast`` (gradients are divided by the image's strongest one, but at least by the one a
    sharp step of this contrast, a fraction of the pixel range, gives).
    OpenCV's settings, under their names in snake case: ``alpha`` (step size of the sliding
    window search: the IoU of neighbouring boxes), ``beta`` (NMS threshold), ``eta`` (adaptation
    rate of the NMS threshold), ``min_score``, ``max_boxes`` (at most this many proposals, best
    first), ``edge_min_mag`` (weaker edge pixels are ignored), ``edge_merge_thr`` (orientation
    change that ends an edge segment), ``cluster_min_mag`` (weaker segments are merged away),
    ``max_aspect_ratio``, ``min_box_area`` (stored-image pixels, scaled with the image),
    ``gamma`` (affinity sensitivity) and ``kappa`` (the box-size penalty's exponent).
    Defaults: OpenCV's, except ``max_boxes`` (300, not 10,000) and ``min_box_area`` (64 stored
    pixels, not 1,000), for the 12-90 px objects of 160 px images.
    """

    method: ClassVar[str] = "edge_boxes"

    upscale_to: int | None = 320
    edge_sigma: float = 1.5
    min_contrast: float = 0.3
    alpha: float = 0.65
    beta: float = 0.75
    eta: float = 1.0
    min_score: float = 0.01
    max_boxes: int = 300
    edge_min_mag: float = 0.1
    edge_merge_thr: float = 0.5
    cluster_min_mag: float = 0.5
    max_aspect_ratio: float = 3.0
    min_box_area: float = 64.0
    gamma: float = 2.0
    kappa: float = 1.5

    def __post_init__(self) -> None:
        if self.upscale_to is not None and int(self.upscale_to) < 16:
            raise ValueError(f"upscale_to must be at least 16 pixels (or None), got {self.upscale_to}")
        if not 0.0 < float(self.min_contrast) <= 1.0:
            raise ValueError(f"min_contrast must be in (0, 1], got {self.min_contrast}")
        if float(self.edge_sigma) < 0:
            raise ValueError(f"edge_sigma must be >= 0, got {self.edge_sigma}")
        for name in ("alpha", "beta"):
            if not 0.0 < float(getattr(self, name)) < 1.0:
                raise ValueError(f"Edge Boxes {name} must be in (0, 1), got {getattr(self, name)}")
        if not 0.0 < float(self.eta) <= 1.0:
            raise ValueError(f"Edge Boxes eta must be in (0, 1], got {self.eta}")
        if int(self.max_boxes) < 1:
            raise ValueError(f"max_boxes must be positive, got {self.max_boxes}")
        if float(self.max_aspect_ratio) < 1.0:
            raise ValueError(f"max_aspect_ratio must be >= 1, got {self.max_aspect_ratio}")
        non_negative = ("min_score", "edge_min_mag", "edge_merge_thr", "cluster_min_mag", "min_box_area")
        for name in (*non_negative, "gamma", "kappa"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"Edge Boxes {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_options(cls, options: dict) -> EdgeBoxesParams:
        """From already filtered keywords, with YAML/CLI numbers coerced to the fields' types (so
        ``max_aspect_ratio=3`` and ``max_aspect_ratio=3.0`` key the same cache folder)."""
        values = dict(options)
        for name, value in list(values.items()):
            if name == "upscale_to":
                values[name] = None if value is None else int(value)
            elif name == "max_boxes":
                values[name] = int(value)
            else:
                values[name] = float(value)
        return cls(**values)

    def key(self) -> str:
        """A short stable hash of the method, every parameter, the OpenCV version and the algorithm
        version (the method is part of it, so no other method's folder can ever match)."""
        payload = dict(asdict(self), method=self.method, opencv=cv2.__version__, algorithm=ALGORITHM_VERSION)
        text = json.dumps(payload, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def describe(self) -> str:
        return ", ".join([f"method={self.method}", *(f"{name}={value}" for name, value in asdict(self).items())])


def gradient_edges(
    image: np.ndarray, sigma: float = 1.5, min_contrast: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """The edge map and orientation map Edge Boxes reads (see the module docstring).

    ``image``: ``[H, W, 3]`` (or ``[H, W]``) uint8. Returns ``(edges, orientation)``, both
    ``[H, W]`` float32: ``edges`` in ``[0, 1]``, thinned to one pixel (all zero on a flat image);
    ``orientation`` the gradient's angle in ``[0, pi)``, x right and y down. ``min_contrast``:
    see :class:`EdgeBoxesParams`.
    """
    pixels = image.astype(np.float32) / 255.0
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if sigma > 0:
        pixels = cv2.GaussianBlur(pixels, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT)
        pixels = pixels.reshape(image.shape[0], image.shape[1], -1)
    grad_x = cv2.Sobel(pixels, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    grad_y = cv2.Sobel(pixels, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT)
    grad_x = grad_x.reshape(pixels.shape)
    grad_y = grad_y.reshape(pixels.shape)
    squared = grad_x * grad_x + grad_y * grad_y
    strongest = squared.argmax(axis=2)[:, :, None]
    grad_x = np.take_along_axis(grad_x, strongest, axis=2)[:, :, 0]
    grad_y = np.take_along_axis(grad_y, strongest, axis=2)[:, :, 0]
    magnitude = np.sqrt(np.take_along_axis(squared, strongest, axis=2)[:, :, 0])
    orientation = np.mod(np.arctan2(grad_y, grad_x), np.pi).astype(np.float32)
    orientation[orientation >= np.float32(np.pi)] = 0.0  # float32 rounding of values just under pi
    peak = max(float(magnitude.max()), min_contrast * step_response(sigma))
    return thin_edges(magnitude / peak, orientation), orientation


@functools.lru_cache(maxsize=16)
def step_response(sigma: float) -> float:
    """The gradient magnitude :func:`gradient_edges` measures (before normalising) at a sharp step
    from 0 to 1 of the pixel range, smoothed with ``sigma``."""
    step = np.zeros((9, 32), dtype=np.uint8)
    step[:, 16:] = 255
    pixels = step.astype(np.float32) / 255.0
    if sigma > 0:
        pixels = cv2.GaussianBlur(pixels, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT)
    return float(np.abs(cv2.Sobel(pixels, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)).max())


def thin_edges(magnitude: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """Non-maximum suppression along the gradient: ``magnitude``, ``orientation``: ``[H, W]``
    float32 → ``[H, W]`` float32 where a pixel keeps its value when it is larger than the
    (bilinearly sampled) magnitude one pixel behind it along ``(cos, sin)`` of its orientation and
    at least as large as the one ahead, and is 0 otherwise. The asymmetric comparison keeps exactly
    one of two equal pixels astride a sharp step."""
    height, width = magnitude.shape
    magnitude = np.ascontiguousarray(magnitude, dtype=np.float32)
    rows, columns = np.indices((height, width), dtype=np.float32)
    step_x, step_y = np.cos(orientation), np.sin(orientation)

    def sampled(direction: float) -> np.ndarray:
        map_x = np.clip(columns + direction * step_x, 0, width - 1).astype(np.float32)
        map_y = np.clip(rows + direction * step_y, 0, height - 1).astype(np.float32)
        return cv2.remap(magnitude, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    keep = (magnitude > sampled(-1.0)) & (magnitude >= sampled(1.0))
    return np.where(keep, magnitude, 0.0).astype(np.float32)


def edge_boxes(image: np.ndarray, params: EdgeBoxesParams = EdgeBoxesParams()) -> np.ndarray:
    """Proposals for one image.

    ``image``: ``[H, W, 3]`` uint8 RGB (a grey ``[H, W]`` image is accepted too). Returns
    ``boxes: [P, 4]`` float32 xyxy in the image's pixels, inside ``[0, W] × [0, H]``, best scored
    first, ``1 <= P <= params.max_boxes``: an image without edges (flat) gets the whole image as
    its one box, as selective search gives it its one region.
    """
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3) or image.dtype != np.uint8:
        raise ValueError(f"edge_boxes needs an [H, W, 3] uint8 image, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    scale = 1.0
    if params.upscale_to is not None and max(height, width) < int(params.upscale_to):
        scale = int(params.upscale_to) / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    edges, orientation = gradient_edges(image, float(params.edge_sigma), float(params.min_contrast))
    search = ximgproc("Edge Boxes").createEdgeBoxes(
        alpha=float(params.alpha),
        beta=float(params.beta),
        eta=float(params.eta),
        minScore=float(params.min_score),
        maxBoxes=int(params.max_boxes),
        edgeMinMag=float(params.edge_min_mag),
        edgeMergeThr=float(params.edge_merge_thr),
        clusterMinMag=float(params.cluster_min_mag),
        maxAspectRatio=float(params.max_aspect_ratio),
        minBoxArea=float(params.min_box_area) * (image.shape[0] / height) * (image.shape[1] / width),
        gamma=float(params.gamma),
        kappa=float(params.kappa),
    )
    found = search.getBoundingBoxes(edges, orientation)
    # Python bindings of OpenCV 4.x return (boxes, scores); older ones the boxes alone.
    rects = found[0] if isinstance(found, tuple) else found
    rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    return rects_to_boxes(
        rects,
        scale=(width / image.shape[1], height / image.shape[0]),
        image_size=(height, width),
        max_boxes=int(params.max_boxes),
    )


def rects_to_boxes(
    rects: np.ndarray, *, scale: tuple[float, float], image_size: tuple[int, int], max_boxes: int
) -> np.ndarray:
    """OpenCV Edge Boxes ``rects: [M, 4]`` (x, y, w, h; 1-based edge pixels, see the module
    docstring) of the searched image → ``[P, 4]`` float32 xyxy boxes of the stored image, clipped,
    empty and exactly repeated boxes removed, rank order kept, at most ``max_boxes``; the whole
    image when nothing is left.

    ``scale``: (stored width / searched width, stored height / searched height);
    ``image_size``: (height, width) of the stored image.
    """
    rects = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
    height, width = image_size
    sx, sy = scale
    boxes = np.stack(
        (
            (rects[:, 0] - 0.5) * sx,
            (rects[:, 1] - 0.5) * sy,
            (rects[:, 0] + rects[:, 2] - 0.5) * sx,
            (rects[:, 1] + rects[:, 3] - 0.5) * sy,
        ),
        axis=1,
    ).astype(np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    boxes = boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = boxes[np.sort(first)][:max_boxes]
    if len(boxes) == 0:
        boxes = np.array([[0.0, 0.0, width, height]], dtype=np.float32)
    return np.ascontiguousarray(boxes, dtype=np.float32)
