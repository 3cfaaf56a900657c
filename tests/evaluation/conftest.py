"""Builders for tiny COCO-format ground truth and results used across the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

COCO100_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "coco_val2014_100"


def xyxy_to_xywh(box):
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


@pytest.fixture
def make_gt():
    """``make_gt(objects, names=("cat",), image_ids=None)``: objects are tuples
    ``(image_id, category_id, xyxy)`` or ``(image_id, category_id, xyxy, {"difficult": 1})``;
    categories get ids 1..len(names)."""

    def build(objects, names=("cat",), image_ids=None):
        if image_ids is None:
            image_ids = sorted({obj[0] for obj in objects})
        annotations = []
        for index, obj in enumerate(objects):
            image_id, category_id, box = obj[:3]
            ann = {
                "id": index + 1,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": xyxy_to_xywh(box),
            }
            ann["area"] = ann["bbox"][2] * ann["bbox"][3]
            ann["iscrowd"] = 0
            if len(obj) > 3:
                ann.update(obj[3])
            annotations.append(ann)
        return {
            "images": [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in image_ids],
            "annotations": annotations,
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(names)],
        }

    return build


@pytest.fixture
def make_dets():
    """``make_dets(rows)``: rows are ``(image_id, category_id, xyxy, score)``."""

    def build(rows):
        return [
            {"image_id": i, "category_id": c, "bbox": xyxy_to_xywh(box), "score": s} for i, c, box, s in rows
        ]

    return build
