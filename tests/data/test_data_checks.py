"""check_dataset: counts and statistics against the generator's own boxes; problems with file names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.data.checks import check_dataset
from detkit.data.coco import CocoDataset
from detkit.data.shapes_render import SHAPE_CLASSES, generate_sample


def test_report_matches_the_generated_data(shapes_layouts, small_shapes_params) -> None:
    root = shapes_layouts["coco"]
    dataset = CocoDataset(root / "annotations" / "instances_train.json", root / "train" / "images")
    report = check_dataset(dataset)
    samples = [generate_sample(small_shapes_params, "train", i) for i in range(small_shapes_params.num_train)]
    boxes = np.concatenate([s.boxes for s in samples])
    labels = np.concatenate([s.labels for s in samples])
    assert report["num_images"] == len(samples)
    assert report["num_images_without_objects"] == sum(len(s.boxes) == 0 for s in samples)
    assert report["num_boxes"] == len(boxes)
    assert report["boxes_per_class"] == {name: int((labels == i + 1).sum()) for i, name in enumerate(SHAPE_CLASSES)}
    widths = boxes[:, 2] - boxes[:, 0]
    assert report["box_width"]["min"] == widths.min() and report["box_width"]["max"] == widths.max()
    assert report["box_width"]["median"] == pytest.approx(np.median(widths))
    areas = widths * (boxes[:, 3] - boxes[:, 1])
    assert report["box_size_coco"]["small"] == int((areas < 32**2).sum())
    assert sum(report["box_size_coco"].values()) == len(boxes)
    assert report["image_width"]["max"] == 96 and report["image_height"]["min"] == 72
    assert report["problems"] == [] and report["num_problems"] == 0
    json.dumps(report)  # the tool writes it as JSON


def test_problems_name_their_files(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "ok.png"), np.zeros((10, 20, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "img" / "small.png"), np.zeros((8, 20, 3), np.uint8))
    images = [
        {"id": 1, "file_name": "ok.png", "width": 20, "height": 10},
        {"id": 2, "file_name": "missing.png", "width": 20, "height": 10},
        {"id": 3, "file_name": "small.png", "width": 20, "height": 10},
    ]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4], "iscrowd": 0},
        {"id": 3, "image_id": 3, "category_id": 1, "bbox": [1, 1, 0, 4], "iscrowd": 0},
    ]
    categories = [{"id": 1, "name": "thing"}, {"id": 2, "name": "never"}]
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    report = check_dataset(CocoDataset(ann_file, tmp_path / "img", invalid_boxes="skip"))
    problems: dict[str | None, list[str]] = {}
    for problem in report["problems"]:
        problems.setdefault(Path(problem["file"]).name if problem["file"] else None, []).append(problem["problem"])
    assert set(problems) == {"ok.png", "missing.png", "small.png", None}
    assert len(problems["ok.png"]) == 1 and "more than once" in problems["ok.png"][0]
    assert len(problems["missing.png"]) == 1 and "not found" in problems["missing.png"][0]
    assert len(problems["small.png"]) == 2  # the skipped box and the wrong stored size
    assert "zero or negative width" in problems["small.png"][0] and "20x8" in problems["small.png"][1]
    assert "'never'" in problems[None][0] and report["classes_without_boxes"] == ["never"]
    assert report["skipped_boxes"] == 1 and report["num_images_without_objects"] == 2
    with pytest.raises(TypeError, match="detkit dataset"):
        check_dataset([1, 2, 3])
