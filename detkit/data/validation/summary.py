"""Summarising a checked dataset (what ``detkit check`` / ``tools/check_dataset.py`` prints and saves).

The problems themselves are found while the dataset is built (``detkit.data.validation.problems``): build
it with ``on_bad_data="skip"`` to get every one of them instead of an error. The statistics here
describe what training would use: the images and boxes that are left after skipping.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from detkit.data.base import DetectionDataset
from detkit.data.image_files import check_image_files
from detkit.data.validation.image_check_cache import checked_image_files
from detkit.data.validation.problems import Problem

# COCO's object size buckets, by box area in stored-image pixels.
SMALL_AREA, MEDIUM_AREA = 32**2, 96**2


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    return {
        "min": float(values.min()),
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "max": float(values.max()),
    }


def _undecodable(dataset: DetectionDataset) -> list[Problem]:
    """Images of a dataset built without decoding (``verify_images=False``) that do not decode."""
    paths = [r.path for r in dataset.records]
    source = getattr(dataset, "source", None)
    found = (checked_image_files(paths, decode=True, source=source) if source
             else check_image_files(paths, decode=True))
    return [
        Problem(f.kind, str(r.path), f"{f.reason} (listed in {r.annotation_file})")
        for r, f in zip(dataset.records, found, strict=True)
        if f.kind is not None
    ]


def problems_text(problems: list[Problem]) -> str:
    """One line per problem, errors first, for a console."""
    ordered = sorted(problems, key=lambda p: p.severity != "error")
    return "\n".join(f"  {p.severity.upper() if p.severity == 'error' else p.severity:<7} {p}" for p in ordered)


def check_dataset(dataset: DetectionDataset, *, read_images: bool = True) -> dict:
    """A JSON-ready report on ``dataset`` (any detkit loader), in stored-image pixels.

    ``problems``: every problem found (``Problem.as_dict()``: kind, severity, file, where, image,
    reason, action), with counts by kind; with ``read_images``, images that were not decoded when
    the dataset was built are decoded now. The statistics cover the kept images and boxes: counts
    (per class by name, per image, by COCO size bucket), crowd/difficult boxes, min/median/mean/max
    of image and box sizes and of the box aspect ratio w/h.
    """
    if not isinstance(dataset, DetectionDataset):
        raise TypeError(
            f"check_dataset needs a detkit dataset (CocoDataset, VocDataset, ...), got {type(dataset).__name__}"
        )
    problems = list(dataset.problems)
    if read_images and not dataset.images_verified:
        problems += _undecodable(dataset)
    boxes_per_class: Counter[int] = Counter()
    images_per_class: Counter[int] = Counter()
    crowd = difficult = 0
    for record in dataset.records:
        boxes_per_class.update(record.labels.tolist())
        images_per_class.update(set(record.labels.tolist()))
        crowd += int(record.iscrowd.sum()) if record.iscrowd is not None else 0
        difficult += int(record.difficult.sum()) if record.difficult is not None else 0
    boxes = np.concatenate([r.boxes for r in dataset.records]) if dataset.records else np.zeros((0, 4), np.float32)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    areas = widths * heights
    counts = np.array([len(r.boxes) for r in dataset.records])
    names = dataset.class_names
    errors = [p for p in problems if p.severity == "error"]
    return {
        "dataset": type(dataset).__name__,
        "num_errors": len(errors),
        "num_warnings": len(problems) - len(errors),
        "problems_by_kind": dict(Counter(p.kind for p in problems).most_common()),
        "dropped_by_skip": dict(dataset.dropped),
        "num_images": len(dataset.records),
        "num_images_without_objects": int((counts == 0).sum()),
        "num_boxes": int(len(boxes)),
        "num_classes": len(names),
        "boxes_per_class": {name: boxes_per_class[label] for label, name in enumerate(names, start=1)},
        "images_per_class": {name: images_per_class[label] for label, name in enumerate(names, start=1)},
        "classes_without_boxes": [name for label, name in enumerate(names, start=1) if boxes_per_class[label] == 0],
        "boxes_per_image": _stats(counts.astype(np.float64)),
        "num_crowd": crowd,
        "num_difficult": difficult,
        "image_width": _stats(np.array([r.width for r in dataset.records], dtype=np.float64)),
        "image_height": _stats(np.array([r.height for r in dataset.records], dtype=np.float64)),
        "box_width": _stats(widths),
        "box_height": _stats(heights),
        "box_sqrt_area": _stats(np.sqrt(areas)),
        "box_aspect_w_over_h": _stats(widths / np.maximum(heights, 1e-6)),
        "box_size_coco": {
            "small": int((areas < SMALL_AREA).sum()),
            "medium": int(((areas >= SMALL_AREA) & (areas < MEDIUM_AREA)).sum()),
            "large": int((areas >= MEDIUM_AREA).sum()),
        },
        "problems": [p.as_dict() for p in problems],
    }
