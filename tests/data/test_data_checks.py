"""check_dataset: counts and statistics against the generator's own boxes; problems with file names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.data.formats.coco import CocoDataset
from detkit.data.synthetic.shapes_render import SHAPE_CLASSES, generate_sample
from detkit.data.validation.summary import check_dataset


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
    assert report["problems"] == [] and report["num_errors"] == report["num_warnings"] == 0
    json.dumps(report)  # the tool writes it as JSON


def test_images_not_decoded_when_built_are_decoded_by_the_check(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "ok.png"), np.zeros((10, 20, 3), np.uint8))
    noise = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    encoded = cv2.imencode(".jpg", noise)[1].tobytes()
    (tmp_path / "img" / "cut.jpg").write_bytes(encoded[: len(encoded) // 2])
    images = [{"id": 1, "file_name": "ok.png", "width": 20, "height": 10},
              {"id": 2, "file_name": "cut.jpg", "width": 200, "height": 100}]
    annotations = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
                   {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}]
    ann_file = tmp_path / "instances.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations,
                                    "categories": [{"id": 1, "name": "thing"}]}))
    # Headers only when built: the cut JPEG's header is whole, so only decoding finds it.
    dataset = CocoDataset(ann_file, tmp_path / "img", verify_images=False)
    assert not dataset.images_verified and [p.kind for p in dataset.problems] == ["duplicate_box"]
    report = check_dataset(dataset)
    found = {(Path(p["file"]).name, p["kind"], p["severity"]) for p in report["problems"]}
    assert found == {("instances.json", "duplicate_box", "warning"), ("cut.jpg", "truncated_image", "error")}
    assert report["num_errors"] == 1 and report["num_warnings"] == 1
    assert report["problems_by_kind"] == {"duplicate_box": 1, "truncated_image": 1}
    assert check_dataset(dataset, read_images=False)["num_errors"] == 0
    with pytest.raises(TypeError, match="detkit dataset"):
        check_dataset([1, 2, 3])


def test_repeated_boxes_are_counted_per_image_and_class(tmp_path: Path) -> None:
    from tests.data.planted import write_image

    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(tmp_path / "images" / name)
    same = [4, 4, 10, 10]
    annotations = [  # (image id, category id, bbox): the same box in other images, or of another class, is no repeat
        (1, 1, same), (1, 2, same), (2, 1, same), (2, 1, same), (2, 1, same), (2, 1, [5, 4, 10, 10]), (3, 1, same),
    ]  # fmt: skip
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({
        "images": [{"id": i, "file_name": n, "width": 64, "height": 48}
                   for i, n in enumerate(("a.jpg", "b.jpg", "c.jpg"), 1)],
        "annotations": [{"id": k, "image_id": i, "category_id": c, "bbox": b}
                        for k, (i, c, b) in enumerate(annotations, 1)],
        "categories": [{"id": 1, "name": "x"}, {"id": 2, "name": "y"}],
    }))  # fmt: skip
    dataset = CocoDataset(ann, tmp_path / "images")
    [problem] = dataset.problems
    assert (problem.kind, problem.image) == ("duplicate_box", "b.jpg")
    assert problem.reason.startswith("2 box(es) repeat")
