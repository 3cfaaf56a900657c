"""The COCO, VOC and YOLO loaders: same boxes from the same data, id mappings, ground truth, bad input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detkit.data.formats.coco import CocoDataset
from detkit.data.formats.voc import VocDataset
from detkit.data.formats.yolo import YoloDataset
from detkit.data.synthetic.shapes_render import SHAPE_CLASSES, generate_sample
from detkit.data.validation.problems import DataError
from tests.data.log_capture import capture_log


def _load_all(layouts: dict[str, Path], split: str):
    coco_root = layouts["coco"]
    return (
        CocoDataset(coco_root / "annotations" / f"instances_{split}.json", coco_root / split / "images"),
        VocDataset(layouts["voc"], split, class_names=list(SHAPE_CLASSES)),
        YoloDataset(layouts["yolo"], split),
    )


@pytest.mark.parametrize("split", ["train", "val"])
def test_three_layouts_give_the_same_boxes_and_labels(shapes_layouts, small_shapes_params, split: str) -> None:
    params = small_shapes_params
    coco, voc, yolo = _load_all(shapes_layouts, split)
    count = params.num_train if split == "train" else params.num_val
    assert len(coco) == len(voc) == len(yolo) == count
    assert coco.class_names == voc.class_names == yolo.class_names == list(SHAPE_CLASSES)
    empty = 0
    for index in range(count):
        expected = generate_sample(params, split, index)
        targets = [dataset[index][1] for dataset in (coco, voc, yolo)]
        for target in targets:
            assert torch.equal(target["labels"], torch.from_numpy(expected.labels))
            assert target["orig_size"].tolist() == list(params.image_size)
        # Integer boxes survive COCO xywh and VOC 1-based inclusive exactly ...
        assert torch.equal(targets[0]["boxes"], torch.from_numpy(expected.boxes))
        assert torch.equal(targets[1]["boxes"], torch.from_numpy(expected.boxes))
        # ... and YOLO's six normalised decimals to well under a thousandth of a pixel per pixel of size.
        torch.testing.assert_close(targets[2]["boxes"], torch.from_numpy(expected.boxes), rtol=1e-3, atol=1e-3)
        assert not targets[1]["difficult"].any() and not targets[0]["iscrowd"].any()
        assert "iscrowd" not in targets[2] and "difficult" not in targets[2]
        empty += len(expected.boxes) == 0
    images = [dataset[0][0] for dataset in (coco, voc, yolo)]
    assert all(image.shape == (3, 72, 96) for image in images)
    assert torch.equal(images[0], images[2])  # the same JPEG bytes in the COCO and YOLO layouts


def test_ground_truth_dicts_agree_and_evaluate_perfectly(shapes_layouts, small_shapes_params) -> None:
    coco, voc, yolo = _load_all(shapes_layouts, "train")
    truths = [dataset.coco_ground_truth() for dataset in (coco, voc, yolo)]
    for truth in truths:
        assert [c["name"] for c in truth["categories"]] == list(SHAPE_CLASSES)
        assert len(truth["images"]) == small_shapes_params.num_train
        assert all(i["width"] == 96 and i["height"] == 72 for i in truth["images"])
        assert min(a["id"] for a in truth["annotations"]) == 1
    bboxes = [[a["bbox"] for a in truth["annotations"]] for truth in truths]
    assert bboxes[0] == bboxes[1]
    np.testing.assert_allclose(bboxes[0], bboxes[2], rtol=1e-3, atol=1e-3)
    assert all(a["difficult"] == 0 for a in truths[1]["annotations"])
    # The ground truth given back as detections must score AP = 1 with pycocotools.
    for truth in truths:
        detections = [
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in truth["annotations"]
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = truth
            gt.createIndex()
            evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        assert evaluator.stats[1] == pytest.approx(1.0)


def _write_image(path: Path, height: int, width: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 128, dtype=np.uint8))


def _coco_file(tmp_path: Path, annotations: list[dict], categories=None, images=None) -> Path:
    images = images or [{"id": 11, "file_name": "a.png", "width": 50, "height": 40}]
    for image in images:
        _write_image(tmp_path / "img" / image["file_name"], image["height"], image["width"])
    categories = categories or [{"id": 90, "name": "zebra"}, {"id": 3, "name": "car"}, {"id": 7, "name": "train"}]
    for number, annotation in enumerate(annotations, start=1):
        annotation.setdefault("id", number)
        annotation.setdefault("image_id", images[0]["id"])
        annotation.setdefault("iscrowd", 0)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def test_coco_non_contiguous_category_ids_map_to_labels_and_back(tmp_path: Path) -> None:
    ann_file = _coco_file(tmp_path, [
        {"category_id": 7, "bbox": [1, 2, 10, 20], "area": 150.0},
        {"category_id": 90, "bbox": [5.5, 6, 3, 4], "area": 12.0, "iscrowd": 1},
        {"category_id": 3, "bbox": [45, 30, 10, 20], "area": 9.0},  # partly outside: clipped to 50x40
    ])
    dataset = CocoDataset(ann_file, tmp_path / "img")
    assert dataset.class_names == ["car", "train", "zebra"] and dataset.category_ids == [3, 7, 90]
    image, target = dataset[0]
    assert target["image_id"] == 11 and dataset.image_ids == [11]
    assert target["labels"].tolist() == [2, 3, 1]
    assert target["boxes"].tolist() == [[1, 2, 11, 22], [5.5, 6, 8.5, 10], [45, 30, 50, 40]]
    assert target["iscrowd"].tolist() == [False, True, False]
    truth = dataset.coco_ground_truth()
    assert [a["category_id"] for a in truth["annotations"]] == [7, 90, 3]
    assert [a["area"] for a in truth["annotations"]] == [150.0, 12.0, 9.0]  # the file's own areas
    assert [a["iscrowd"] for a in truth["annotations"]] == [0, 1, 0]
    assert truth["annotations"][2]["bbox"] == [45, 30, 5, 10]
    assert {c["id"]: c["name"] for c in truth["categories"]} == {3: "car", 7: "train", 90: "zebra"}


def test_coco_images_without_objects_are_kept(tmp_path: Path) -> None:
    images = [
        {"id": 1, "file_name": "a.png", "width": 20, "height": 10},
        {"id": 2, "file_name": "b.png", "width": 30, "height": 10},
    ]
    dataset = CocoDataset(
        _coco_file(tmp_path, [{"category_id": 3, "bbox": [1, 1, 2, 2]}], images=images), tmp_path / "img"
    )
    assert len(dataset) == 2
    image, target = dataset[1]
    assert image.shape == (3, 10, 30) and target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64


@pytest.mark.parametrize(
    ("bbox", "category", "kind", "reason"),
    [
        ([10, 10, 0, 5], 3, "bad_box_size", "zero or negative size (width 0, height 5 px): box [10, 10, 0, 5]"),
        ([10, 10, 5, -1], 3, "bad_box_size", "zero or negative size (width 5, height -1 px)"),
        # Positive in float64, but the boxes are kept in float32, where 40 + 1e-6 is 40.
        ([40, 10, 1e-6, 5], 3, "bad_box_size", "zero or negative size (width 0, height 5 px)"),
        (
            [60, 10, 5, 5],
            3,
            "box_outside_image",
            "box [60, 10, 5, 5] (COCO x, y, w, h) lies wholly outside the 50x40 image",
        ),
        ([10, float("nan"), 5, 5], 3, "non_finite_coordinate", "a coordinate is NaN or infinite: box [10, nan, 5, 5]"),
        ([10, 10, 5, 5], 42, "unknown_class", "category_id 42 is not in 'categories' (ids 3, 7, 90)"),
        ([10, 10, 5], 3, "malformed_box", "bbox [10, 10, 5] has 3 values, expected 4 (x, y, w, h)"),
    ],
)
def test_coco_bad_box_raises_naming_the_file_annotation_and_fix(tmp_path: Path, bbox, category, kind, reason) -> None:
    ann_file = _coco_file(tmp_path, [{"category_id": 3, "bbox": [1, 1, 4, 4]}, {"category_id": category, "bbox": bbox}])
    with pytest.raises(DataError) as error:
        CocoDataset(ann_file, tmp_path / "img")
    message = str(error.value)
    assert f"{ann_file}, annotation id 2 (image a.png): {reason}" in message and f"[{kind}]" in message
    assert "1 problem(s)" in message and "on_bad_data='skip'" in message
    assert [p.kind for p in error.value.problems if p.severity == "error"] == [kind]


def test_on_bad_data_skip_drops_exactly_the_bad_boxes_and_logs(tmp_path: Path) -> None:
    ann_file = _coco_file(tmp_path, [
        {"category_id": 3, "bbox": [1, 1, 4, 4]},
        {"category_id": 3, "bbox": [10, 10, 0, 5]},
        {"category_id": 42, "bbox": [2, 2, 4, 4]},
        {"category_id": 7, "bbox": [40, 30, 15, 5]},  # 5 px over the right border: clipped, a warning
    ])
    with capture_log("detkit.data.validation.problems") as lines:
        dataset = CocoDataset(ann_file, tmp_path / "img", on_bad_data="skip")
    assert dataset[0][1]["boxes"].tolist() == [[1, 1, 5, 5], [40, 30, 50, 35]]
    assert sorted(p.kind for p in dataset.problems) == [
        "bad_box_size", "box_partly_outside", "class_without_boxes", "unknown_class"]
    assert dataset.dropped == {"images": 0, "bad_boxes": 2, "boxes_in_dropped_images": 0}
    assert len(dataset.coco_ground_truth()["annotations"]) == 2
    log = "\n".join(lines)
    assert "dropped 2 bad box(es) and 0 image(s)" in log and "kept 1 image(s) with 2 box(es)" in log
    assert "annotation id 2" in log and "2 warning(s)" in log
    with pytest.raises(ValueError, match="on_bad_data must be one of"):
        CocoDataset(ann_file, tmp_path / "img", on_bad_data="ignore")


def test_missing_and_corrupt_image_files_are_named(tmp_path: Path) -> None:
    images = [
        {"id": 1, "file_name": "gone.png", "width": 20, "height": 10},
        {"id": 2, "file_name": "bad.png", "width": 20, "height": 10},
    ]
    ann_file = _coco_file(tmp_path, [], images=images[1:])
    (tmp_path / "img" / "bad.png").write_bytes(b"not a png at all")
    ann_file.write_text(json.dumps({"images": images, "annotations": [], "categories": [{"id": 1, "name": "x"}]}))
    with pytest.raises(DataError, match=r"(?s)gone\.png: image file not found.*bad\.png: not an image, or corrupt"):
        CocoDataset(ann_file, tmp_path / "img")
    with pytest.raises(DataError, match=r"nothing\.json: COCO annotation file not found \[missing_annotation_file\]"):
        CocoDataset(tmp_path / "nothing.json", tmp_path / "img")


def test_image_size_disagreeing_with_the_annotation_is_an_error(tmp_path: Path) -> None:
    ann_file = _coco_file(tmp_path, [], images=[{"id": 1, "file_name": "a.png", "width": 20, "height": 10}])
    _write_image(tmp_path / "img" / "a.png", 12, 20)
    with pytest.raises(
        DataError, match=r"a\.png: the file is 20x12 \(width x height\) but .*instances\.json says 20x10"
    ):
        CocoDataset(ann_file, tmp_path / "img")


def _voc_root(tmp_path: Path, objects: str, split_names=("x1",)) -> Path:
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for stem in split_names:
        _write_image(root / "JPEGImages" / f"{stem}.jpg", 30, 40)
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>40</width><height>30</height>"
            f"<depth>3</depth></size>{objects}</annotation>"
        )
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(split_names) + "\n")
    return root


def _voc_object(name: str, box: tuple, difficult: int = 0) -> str:
    coords = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True))
    return f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{coords}</bndbox></object>"


def test_voc_one_based_inclusive_boxes_and_difficult(tmp_path: Path) -> None:
    objects = _voc_object("dog", (1, 1, 10, 20)) + _voc_object("person", (5, 6, 40, 30), difficult=1)
    root = _voc_root(tmp_path, objects, split_names=("x1", "x2"))
    dataset = VocDataset(root)
    assert dataset.class_names[11] == "dog" and dataset.file_stems == ["x1", "x2"] and dataset.image_ids == [0, 1]
    target = dataset[1][1]
    assert target["image_id"] == 1
    # xmin=1..xmax=10 covers the first ten pixel columns: continuous x1=0, x2=10.
    assert target["boxes"].tolist() == [[0, 0, 10, 20], [4, 5, 40, 30]]
    assert target["labels"].tolist() == [12, 15] and target["difficult"].tolist() == [False, True]
    truth = dataset.coco_ground_truth()
    assert truth["annotations"][0]["bbox"] == [0, 0, 10, 20]
    assert [a["difficult"] for a in truth["annotations"][:2]] == [0, 1]
    assert len(VocDataset(root, keep_difficult=False)[0][1]["boxes"]) == 1
    assert VocDataset(root, class_names="auto").class_names == ["dog", "person"]


def test_voc_unknown_class_and_missing_split(tmp_path: Path) -> None:
    objects = (
        _voc_object("dog", (1, 1, 10, 10)) + _voc_object("cat", (2, 2, 9, 9)) + _voc_object("unicorn", (1, 1, 10, 10))
    )
    root = _voc_root(tmp_path, objects)
    with pytest.raises(DataError, match=r"x1\.xml, object 3 \(image x1\.jpg\): class name 'unicorn' is not one"):
        VocDataset(root, class_names=["cat", "dog"])
    assert len(VocDataset(root, class_names=["cat", "dog"], on_bad_data="skip")[0][1]["boxes"]) == 2
    with pytest.raises(DataError, match=r"test\.txt: VOC split file not found \(splits there: trainval\)"):
        VocDataset(root, "test")


def test_voc_folder_of_ones_own_classes_reads_them_from_the_files(tmp_path: Path) -> None:
    objects = _voc_object("star", (1, 1, 10, 10)) + _voc_object("arrow", (2, 2, 20, 20))
    root = _voc_root(tmp_path, objects, split_names=("x1", "x2"))
    # An annotation outside the split: its names count all the same (train and val agree on the list).
    heart = _voc_object("heart", (1, 1, 5, 5))
    (root / "Annotations" / "x3.xml").write_text(
        f"<annotation><size><width>40</width><height>30</height></size>{heart}</annotation>"
    )
    dataset = VocDataset(root)
    assert dataset.class_names == ["arrow", "heart", "star"]
    assert dataset[0][1]["labels"].tolist() == [3, 1]
    # A folder whose names are all PASCAL's keeps PASCAL's 20 classes in their usual order.
    pascal = _voc_root(tmp_path / "pascal", _voc_object("dog", (1, 1, 10, 10)))
    assert VocDataset(pascal).class_names[11] == "dog" and len(VocDataset(pascal).class_names) == 20


def test_voc_class_list_for_other_data_is_named_in_one_line(tmp_path: Path) -> None:
    objects = (
        _voc_object("star", (1, 1, 10, 10)) + _voc_object("arrow", (2, 2, 20, 20)) + _voc_object("dog", (2, 2, 9, 9))
    )
    root = _voc_root(tmp_path, objects)
    pascal = ["aeroplane", "bicycle", "bird", "boat", "bottle", "dog"]
    with pytest.raises(DataError, match=r"2 of 3 objects have a class name outside data\.class_names.*"
                       r"the files use \['arrow', 'dog', 'star'\]\. Set data\.class_names=\[arrow,dog,star\]") as error:
        VocDataset(root, class_names=pascal)
    assert len(error.value.problems) == 1  # one line, not one problem per box
    assert len(VocDataset(root, class_names=pascal, on_bad_data="skip")[0][1]["boxes"]) == 1


def test_yolo_names_dict_polygons_missing_labels_and_bad_lines(tmp_path: Path) -> None:
    for stem in ("a", "b"):
        _write_image(tmp_path / "images" / "train" / f"{stem}.png", 20, 40)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n\n0 0.1 0.2 0.3 0.2 0.2 0.6\n")
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/train\nnames: {0: cat, 1: dog}\n")
    dataset = YoloDataset(tmp_path / "data.yaml", "train")
    assert dataset.class_names == ["cat", "dog"] and dataset.category_ids == [1, 2] and len(dataset) == 2
    target = dataset[0][1]
    torch.testing.assert_close(target["boxes"], torch.tensor([[10.0, 5.0, 30.0, 15.0], [4.0, 4.0, 12.0, 12.0]]))
    assert target["labels"].tolist() == [2, 1]
    assert dataset[1][1]["boxes"].shape == (0, 4)  # no label file: an image without objects
    (tmp_path / "labels" / "train" / "b.txt").write_text("5 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataError, match=r"b\.txt, line 1 \(image b\.png\): class index 5 is outside 0\.\.1"):
        YoloDataset(tmp_path / "data.yaml", "train")
    (tmp_path / "labels" / "train" / "b.txt").write_text("0 0.5 0.5 0.1\n")
    with pytest.raises(DataError, match=r"b\.txt, line 1 \(image b\.png\): 4 fields in '0 0\.5 0\.5 0\.1'; expected"):
        YoloDataset(tmp_path / "data.yaml", "train")
    with pytest.raises(ValueError, match="no split 'test'"):
        YoloDataset(tmp_path / "data.yaml", "test")
