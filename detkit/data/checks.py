"""Validating a detection dataset and summarising it (what ``tools/check_dataset.py`` prints and saves)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from detkit.data.base import DetectionDataset, read_image

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


def check_dataset(dataset: DetectionDataset, *, read_images: bool = True, max_problems: int = 1000) -> dict:
    """A JSON-ready report on ``dataset`` (any detkit loader), in stored-image pixels.

    Counts images, images without objects, boxes (per class by name, per image, by COCO size
    bucket), crowd/difficult boxes; gives min/median/mean/max of image and box sizes; lists
    problems with their file names: boxes skipped while loading (build the dataset with
    ``invalid_boxes="skip"`` to see all of them), duplicate boxes, classes without any box and,
    with ``read_images``, image files that are missing, unreadable or not the annotated size.
    """
    if not isinstance(dataset, DetectionDataset):
        raise TypeError(f"check_dataset needs a detkit dataset (CocoDataset, VocDataset, ...), got {type(dataset).__name__}")
    problems = list(dataset.problems)
    boxes_per_class: Counter[int] = Counter()
    images_per_class: Counter[int] = Counter()
    crowd = difficult = 0
    all_boxes = []
    for record in dataset.records:
        boxes_per_class.update(record.labels.tolist())
        images_per_class.update(set(record.labels.tolist()))
        crowd += int(record.iscrowd.sum()) if record.iscrowd is not None else 0
        difficult += int(record.difficult.sum()) if record.difficult is not None else 0
        all_boxes.append(record.boxes)
        keyed = np.concatenate([record.boxes, record.labels[:, None].astype(np.float32)], axis=1)
        if len(np.unique(keyed, axis=0)) < len(keyed):
            problems.append({"file": str(record.path), "problem": "the same box and class appear more than once"})
        if read_images:
            try:
                image = read_image(record.path, source=record.annotation_file)
            except (OSError, ValueError) as error:
                problems.append({"file": str(record.path), "problem": str(error)})
                continue
            if image.shape[:2] != (record.height, record.width):
                problems.append({
                    "file": str(record.path),
                    "problem": f"image is {image.shape[1]}x{image.shape[0]} (w x h), "
                               f"annotations say {record.width}x{record.height}",
                })

    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4), dtype=np.float32)
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    areas = widths * heights
    counts = np.array([len(r.boxes) for r in dataset.records])
    names = dataset.class_names
    empty_classes = [name for label, name in enumerate(names, start=1) if boxes_per_class[label] == 0]
    for name in empty_classes:
        problems.append({"file": None, "problem": f"class {name!r} has no box in this split"})
    return {
        "dataset": type(dataset).__name__,
        "num_images": len(dataset.records),
        "num_images_without_objects": int((counts == 0).sum()),
        "num_boxes": int(len(boxes)),
        "num_classes": len(names),
        "boxes_per_class": {name: boxes_per_class[label] for label, name in enumerate(names, start=1)},
        "images_per_class": {name: images_per_class[label] for label, name in enumerate(names, start=1)},
        "classes_without_boxes": empty_classes,
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
        "skipped_boxes": len(dataset.problems),
        "num_problems": len(problems),
        "problems": problems[:max_problems],
    }
