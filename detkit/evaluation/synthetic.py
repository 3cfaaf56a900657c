"""Synthetic COCO ground truth and results of any size, for timing and cross-checking evaluators.

Deterministic for a seed. The data look like a detector's output on COCO, so that every code
path of the evaluators is exercised: objects of all three COCO area ranges (small < 32², medium,
large > 96²), a few crowd boxes, images without objects, detections that are good, poor,
duplicated or of the wrong class, and low-scoring clutter filling each image's budget.
"""

from __future__ import annotations

import numpy as np


def _random_boxes(rng: np.random.Generator, count: int, width: int, height: int) -> np.ndarray:
    """``float64[count, 4]`` COCO ``xywh`` inside a ``width`` x ``height`` image, sides 4-400 px
    spread log-uniformly (so all three COCO area ranges occur), aspect ratios 1:3 to 3:1."""
    side = np.exp(rng.uniform(np.log(4.0), np.log(400.0), count))
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3.0), count))
    w = np.minimum(side * np.sqrt(aspect), width)
    h = np.minimum(side / np.sqrt(aspect), height)
    x = rng.uniform(0.0, 1.0, count) * (width - w)
    y = rng.uniform(0.0, 1.0, count) * (height - h)
    return np.stack([x, y, w, h], axis=1)


def synthetic_coco(
    num_images: int = 5000,
    detections_per_image: int = 100,
    *,
    num_classes: int = 80,
    objects_per_image: float = 7.0,
    crowd_fraction: float = 0.01,
    image_size: tuple[int, int] = (640, 480),
    seed: int = 0,
) -> tuple[dict, list[dict]]:
    """COCO instances ground truth and a COCO results list with exactly ``detections_per_image``
    detections on every image.

    Objects per image are Poisson(``objects_per_image``) (at most half the detection budget);
    each object gets two detections: its box jittered by 10 % of its size (labelled correctly 90 %
    of the time) with a score that falls with the jitter. The rest of the budget is clutter: random
    boxes and classes scoring below 0.5. Categories have ids 1..``num_classes``, names
    ``class1``...; boxes are COCO ``[x, y, w, h]`` in pixels.

    Returns:
        ``(ground_truth, results)``.
    """
    if num_images < 1 or detections_per_image < 0 or num_classes < 1:
        raise ValueError(
            "need num_images >= 1, detections_per_image >= 0 and num_classes >= 1, got "
            f"{num_images}, {detections_per_image}, {num_classes}"
        )
    rng = np.random.default_rng(seed)
    width, height = image_size
    image_ids = np.arange(1, num_images + 1)

    objects = np.minimum(rng.poisson(objects_per_image, num_images), detections_per_image // 2)
    gt_image = np.repeat(image_ids, objects)
    gt_boxes = _random_boxes(rng, len(gt_image), width, height)
    gt_class = rng.integers(1, num_classes + 1, len(gt_image))
    crowd = rng.random(len(gt_image)) < crowd_fraction

    # Two detections per object: a jittered copy, scored by how far it moved.
    copies = np.repeat(np.arange(len(gt_image)), 2)
    noise = rng.normal(0.0, 0.1, (len(copies), 4))
    source = gt_boxes[copies]
    near = source.copy()
    near[:, :2] += noise[:, :2] * source[:, 2:]
    near[:, 2:] *= np.exp(noise[:, 2:])
    near_class = np.where(
        rng.random(len(copies)) < 0.9, gt_class[copies], rng.integers(1, num_classes + 1, len(copies))
    )
    near_score = np.clip(1.0 - 2.0 * np.abs(noise).mean(axis=1) + rng.normal(0, 0.1, len(copies)), 0.01, 1.0)

    # Clutter fills every image up to the budget.
    clutter_count = detections_per_image - 2 * objects
    clutter_image = np.repeat(image_ids, clutter_count)
    clutter = _random_boxes(rng, len(clutter_image), width, height)
    clutter_class = rng.integers(1, num_classes + 1, len(clutter_image))
    clutter_score = rng.uniform(0.001, 0.5, len(clutter_image))

    ground_truth = {
        "images": [{"id": int(i), "width": width, "height": height} for i in image_ids],
        "annotations": [
            {
                "id": index + 1,
                "image_id": image,
                "category_id": category,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": int(is_crowd),
            }
            for index, (image, category, box, is_crowd) in enumerate(
                zip(gt_image.tolist(), gt_class.tolist(), gt_boxes.tolist(), crowd.tolist(), strict=True)
            )
        ],
        "categories": [{"id": c, "name": f"class{c}"} for c in range(1, num_classes + 1)],
    }
    columns = (
        np.concatenate([gt_image[copies], clutter_image]).tolist(),
        np.concatenate([near_class, clutter_class]).tolist(),
        np.concatenate([near, clutter]).tolist(),
        np.concatenate([near_score, clutter_score]).tolist(),
    )
    results = [
        {"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s in zip(*columns, strict=True)
    ]
    return ground_truth, results
