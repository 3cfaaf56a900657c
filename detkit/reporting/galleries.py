"""Galleries of the images where each error cause costs most, drawn with ground truth and
detections colour-coded by cause (one JPEG per cause, ``errors_<cause>.jpg``: photographs, which
PNG would store several times larger).

An image's cost for a cause is the summed score of its errors of that cause (a confident false
positive costs more AP than a timid one; a missed object counts 1), then their number. A panel
draws at most ``MAX_DRAWN`` errors, the highest-scoring ones, so that a pile of low-score boxes
does not hide the objects. Each image is scaled to the same size before drawing, so boxes and
labels keep one readable size however large or small the image; labels sit on a filled background.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from detkit.evaluation.errors import CAUSES, COVERED, MISS, TRUE_POSITIVE, ErrorAssignment, assign_errors
from detkit.evaluation.inputs import DetectionSet, GroundTruth, load_detections, load_ground_truth
from detkit.reporting.error_report import CAUSE_COLOURS

PANEL_SIZE = 480  # long side of every drawn image, pixels
MAX_DRAWN = 6  # errors drawn per panel
HEADER = 26
FOUND_COLOUR = (80, 200, 80)  # BGR: a true positive and the object it found
OBJECT_COLOUR = (255, 255, 255)


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    red, green, blue = (int(value[i : i + 2], 16) for i in (0, 2, 4))
    return blue, green, red


def worst_images(
    ground_truth: GroundTruth,
    detections: DetectionSet,
    assignment: ErrorAssignment,
    cause: str,
    count: int = 12,
) -> list[tuple[int, int]]:
    """``[(image_id, errors of that cause)]``, the costliest ``count`` images first; only images
    with at least one such error. ``assignment``: ``assign_errors``' result for these inputs."""
    index = CAUSES.index(cause)
    if index == MISS:
        image_ids = ground_truth.ann_image_ids[assignment.gt_cause == MISS]
        weights = np.ones(len(image_ids))
    else:
        selected = assignment.det_cause == index
        image_ids, weights = detections.image_ids[selected], detections.scores[selected]
    totals: dict[int, list[float]] = {}
    for image_id, weight in zip(image_ids.tolist(), weights.tolist(), strict=True):
        entry = totals.setdefault(image_id, [0, 0.0])
        entry[0] += 1
        entry[1] += weight
    ranked = sorted(totals.items(), key=lambda item: (-item[1][1], -item[1][0], item[0]))
    return [(image_id, int(n)) for image_id, (n, _) in ranked[:count]]


def _read(path: Path) -> np.ndarray:
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    image = None if data is None else cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise FileNotFoundError(f"cannot read image file for the error galleries: {path}")
    return image


def _label(canvas: np.ndarray, text: str, corner: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """``text`` on a filled box of ``colour`` just above ``corner`` (inside the image)."""
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1
    (width, height), base = cv2.getTextSize(text, font, scale, thickness)
    x = int(np.clip(corner[0], 0, max(canvas.shape[1] - width - 2, 0)))
    y = int(np.clip(corner[1], height + base + 2, canvas.shape[0]))
    cv2.rectangle(canvas, (x, y - height - base - 2), (x + width + 2, y), colour, -1)
    luminance = 0.114 * colour[0] + 0.587 * colour[1] + 0.299 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 1, y - base - 1), font, scale, ink, thickness, cv2.LINE_AA)


def draw_image_errors(
    image: np.ndarray,
    ground_truth: GroundTruth,
    detections: DetectionSet,
    assignment: ErrorAssignment,
    image_id: int,
    cause: str,
    *,
    title: str = "",
) -> np.ndarray:
    """One panel: objects white (found ones green, missed ones in the missed colour), the
    image's detections of ``cause`` in that cause's colour with class and score, and its true
    positives in green. ``image``: BGR uint8 in the ground truth's pixels."""
    scale = PANEL_SIZE / max(image.shape[:2])
    canvas = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
    index = CAUSES.index(cause)
    labels: list[tuple[str, tuple[int, int], tuple[int, int, int]]] = []

    def box(xyxy: np.ndarray, colour: tuple[int, int, int], width: int, text: str | None) -> None:
        x1, y1, x2, y2 = (int(round(v * scale)) for v in xyxy)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, width, cv2.LINE_AA)
        if text:
            labels.append((text, (x1, y1), colour))

    for g in np.flatnonzero(ground_truth.ann_image_ids == image_id):
        name = ground_truth.name_of(int(ground_truth.ann_category_ids[g]))
        status = assignment.gt_cause[g]
        if status == TRUE_POSITIVE:
            box(ground_truth.boxes[g], FOUND_COLOUR, 1, None)
        elif status == MISS and index == MISS:
            box(ground_truth.boxes[g], _bgr(CAUSE_COLOURS["missed"]), 3, f"missed {name}")
        else:
            box(ground_truth.boxes[g], OBJECT_COLOUR, 2 if status == COVERED else 1, f"object {name}")
    in_image = np.flatnonzero(detections.image_ids == image_id)
    for d in in_image[assignment.det_cause[in_image] == TRUE_POSITIVE]:
        box(detections.boxes[d], FOUND_COLOUR, 2, None)
    errors = in_image[assignment.det_cause[in_image] == index]
    for d in errors[np.argsort(-detections.scores[errors], kind="stable")][:MAX_DRAWN]:
        name = ground_truth.name_of(int(detections.category_ids[d]))
        box(detections.boxes[d], _bgr(CAUSE_COLOURS[cause]), 2, f"{name} {detections.scores[d]:.2f}")
    for text, corner, colour in labels:  # after every box, so that no box line crosses a label
        _label(canvas, text, corner, colour)
    header = np.full((HEADER, canvas.shape[1], 3), 32, dtype=np.uint8)
    cv2.putText(header, title[:70], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([header, canvas], axis=0)


def _tile(panels: list[np.ndarray], columns: int = 3) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    width = max(p.shape[1] for p in panels)
    rows = -(-len(panels) // columns)
    sheet = np.full((rows * (height + 4), min(columns, len(panels)) * (width + 4), 3), 16, dtype=np.uint8)
    for i, panel in enumerate(panels):
        top, left = (i // columns) * (height + 4), (i % columns) * (width + 4)
        sheet[top : top + panel.shape[0], left : left + panel.shape[1]] = panel
    return sheet


def write_error_galleries(
    ground_truth: dict | str | Path | GroundTruth,
    detections: list[dict] | str | Path | DetectionSet,
    image_paths: Mapping[int, str | Path],
    out_dir: str | Path,
    *,
    count: int = 12,
    **settings,
) -> dict[str, dict]:
    """``errors_<cause>.jpg`` in ``out_dir`` for every cause that occurs: its ``count`` costliest
    images (``image_paths``: image id -> file). Returns ``{cause: {"file": name, "images":
    [{"image_id", "file_name", "errors"}]}}``."""
    ground_truth = load_ground_truth(ground_truth)
    detections = load_detections(detections, ground_truth)
    assignment = assign_errors(ground_truth, detections, **settings)
    names = {
        int(image["id"]): str(image.get("file_name", image["id"])) for image in ground_truth.dataset["images"]
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict] = {}
    for cause in CAUSES:
        worst = worst_images(ground_truth, detections, assignment, cause, count)
        worst = [(image_id, n) for image_id, n in worst if image_id in image_paths]
        if not worst:
            continue
        panels = [
            draw_image_errors(
                _read(Path(image_paths[image_id])),
                ground_truth,
                detections,
                assignment,
                image_id,
                cause,
                title=f"{Path(names[image_id]).name}: {n} {cause}"
                + (f" ({MAX_DRAWN} strongest drawn)" if n > MAX_DRAWN and cause != "missed" else ""),
            )
            for image_id, n in worst
        ]
        file_name = f"errors_{cause}.jpg"
        cv2.imwrite(str(out_dir / file_name), _tile(panels), [cv2.IMWRITE_JPEG_QUALITY, 88])
        written[cause] = {
            "file": file_name,
            "images": [{"image_id": i, "file_name": names[i], "errors": n} for i, n in worst],
        }
    return written
