"""Draw boxes on images and write PNGs (predictions in green-to-red by class, ground truth in white)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor


def _colour(label: int) -> tuple[int, int, int]:
    # Well-separated hues from the golden-ratio sequence, stable for a label.
    hue = int((label * 0.618033988749895 % 1.0) * 179)
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def to_bgr_uint8(image: Tensor | np.ndarray) -> np.ndarray:
    """``Tensor[3, H, W]`` float in [0, 1] or uint8 (RGB), or ``H×W×3`` uint8 RGB → ``H×W×3`` uint8 BGR."""
    if isinstance(image, Tensor) and image.dtype == torch.uint8:
        image = image.detach().permute(1, 2, 0).cpu().numpy()
    elif isinstance(image, Tensor):
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(image[..., ::-1])


def draw_boxes(
    image: Tensor | np.ndarray,
    boxes: Tensor,
    labels: Tensor,
    class_names: Sequence[str],
    *,
    scores: Tensor | None = None,
    ground_truth: Tensor | None = None,
) -> np.ndarray:
    """``boxes: Tensor[K, 4] xyxy`` in the image's pixels → a BGR uint8 image with the boxes drawn."""
    canvas = to_bgr_uint8(image)
    scale = max(canvas.shape[:2]) / 400
    thickness = max(1, round(scale * 1.5))
    if ground_truth is not None:
        for box in ground_truth.round().int().tolist():
            cv2.rectangle(canvas, tuple(box[:2]), tuple(box[2:]), (255, 255, 255), 1)
    for i, (box, label) in enumerate(zip(boxes.round().int().tolist(), labels.tolist(), strict=True)):
        colour = _colour(label)
        cv2.rectangle(canvas, tuple(box[:2]), tuple(box[2:]), colour, thickness)
        name = class_names[label - 1] if 0 < label <= len(class_names) else str(label)
        text = f"{name} {float(scores[i]):.2f}" if scores is not None else name
        cv2.putText(
            canvas, text, (box[0], max(box[1] - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35 * max(scale, 0.8), colour, 1,
            cv2.LINE_AA,
        )
    return canvas


def save_image(path: str | Path, canvas: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"could not write image {path}")
    return path


def tile(canvases: Sequence[np.ndarray], columns: int = 4) -> np.ndarray:
    """Lay images of possibly different sizes out on a grid (for one overview PNG)."""
    height = max(c.shape[0] for c in canvases)
    width = max(c.shape[1] for c in canvases)
    rows = (len(canvases) + columns - 1) // columns
    sheet = np.zeros((rows * height, min(columns, len(canvases)) * width, 3), np.uint8)
    for i, canvas in enumerate(canvases):
        r, c = divmod(i, columns)
        sheet[r * height : r * height + canvas.shape[0], c * width : c * width + canvas.shape[1]] = canvas
    return sheet
