"""Every kind of problem planted in a COCO-layout dataset is found in one pass, with its file, its
annotation id (or image entry) and its reason; nothing else is reported; the check command exits
non-zero; with on_bad_data=skip exactly the planted items are dropped and training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detkit.cli import main as detkit_main
from detkit.data.formats.coco import CocoDataset
from detkit.data.validation.problems import DataError, problem_report
from detkit.data.validation.summary import check_dataset
from detkit.engine.config import load_config
from detkit.jobs.train_and_evaluate import train
from tests.data.planted import (
    HEIGHT,
    TINY_TRAIN,
    WIDTH,
    counted,
    found,
    write_image,
    write_truncated,
    write_unreadable,
)

NAN, INF = float("nan"), float("inf")


def plant(root: Path) -> tuple[Path, Path, list[tuple[str, str | None, str, str]]]:
    """The annotation file, the image folder, and what was planted: (file, where, kind, reason part)."""
    img = root / "images"
    for name in ("good1.jpg", "good2.jpg", "empty.jpg", "d1.jpg", "d2.jpg", "twice.jpg"):
        write_image(img / name)
    write_image(img / "wrong_size.jpg", width=WIDTH - 4)
    write_unreadable(img / "garbage.jpg")
    write_truncated(img / "cut.jpg")
    write_truncated(img / "cut.png")
    size = {"width": WIDTH, "height": HEIGHT}
    images = [
        {"id": 1, "file_name": "good1.jpg", **size},
        {"id": 2, "file_name": "good2.jpg", **size},
        {"id": 3, "file_name": "empty.jpg", **size},  # no objects: a valid negative
        {"id": 4, "file_name": "missing.jpg", **size},
        {"id": 5, "file_name": "garbage.jpg", **size},
        {"id": 6, "file_name": "cut.jpg", **size},
        {"id": 7, "file_name": "cut.png", **size},
        {"id": 8, "file_name": "d1.jpg", **size},
        {"id": 8, "file_name": "d2.jpg", **size},
        {"id": 9, "file_name": "twice.jpg", **size},
        {"id": 10, "file_name": "twice.jpg", **size},
        {"id": 11, "file_name": "wrong_size.jpg", **size},
        {"id": 12, "file_name": "no_width.jpg", "height": HEIGHT},
    ]
    boxes = [  # (annotation id, image id, category id, bbox)
        (1, 1, 2, [2, 2, 20, 20]),
        (2, 1, 5, [50, 30, 20, 10]),  # 6 px over the right border: clipped, a warning
        (3, 1, 2, [10, 10, 0, 5]),
        (4, 1, 2, [10, 10, 5, -3]),
        (5, 1, 2, [70, 10, 5, 5]),
        (6, 1, 2, [NAN, 10, 5, 5]),
        (7, 1, 2, [10, INF, 5, 5]),
        (8, 1, 42, [10, 10, 5, 5]),
        (9, 1, 2, [10, 10, 5]),
        (10, 2, 5, [5, 5, 30, 30]),
        (11, 4, 2, [5, 5, 10, 10]),
        (12, 8, 2, [5, 5, 10, 10]),
        (13, 9, 5, [5, 5, 10, 10]),
        (14, 10, 5, [20, 5, 10, 10]),
        (15, 11, 2, [5, 5, 10, 10]),
        (16, 99, 2, [5, 5, 10, 10]),
    ]
    annotations = [{"id": a, "image_id": i, "category_id": c, "bbox": b, "iscrowd": 0} for a, i, c, b in boxes]
    categories = [{"id": 9, "name": "bird"}, {"id": 2, "name": "cat"}, {"id": 5, "name": "dog"}]
    ann_file = root / "instances.json"
    # json writes NaN and Infinity as JavaScript does, which is how such files exist in the wild.
    ann_file.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    j = ann_file.name
    planted = [
        (
            j,
            "annotation id 2",
            "box_partly_outside",
            "reaches 6 px outside the 64x48 image; clipped to [50, 30, 64, 40]",
        ),
        (j, "annotation id 3", "bad_box_size", "zero or negative size (width 0, height 5 px)"),
        (j, "annotation id 4", "bad_box_size", "zero or negative size (width 5, height -3 px)"),
        (j, "annotation id 5", "box_outside_image", "box [70, 10, 5, 5] (COCO x, y, w, h) lies wholly outside"),
        (j, "annotation id 6", "non_finite_coordinate", "a coordinate is NaN or infinite: box [nan, 10, 5, 5]"),
        (j, "annotation id 7", "non_finite_coordinate", "a coordinate is NaN or infinite: box [10, inf, 5, 5]"),
        (j, "annotation id 8", "unknown_class", "category_id 42 is not in 'categories' (ids 2, 5, 9)"),
        (j, "annotation id 9", "malformed_box", "bbox [10, 10, 5] has 3 values, expected 4"),
        (j, "annotation id 16", "unknown_image_id", "image_id 99 is not in the file's 'images' list"),
        (j, "images[12]", "malformed_annotation_file", "needs an integer id, a file_name and a positive width"),
        (j, "image id 8", "duplicate_image_id", "image id 8 is listed 2 times in 'images' (d1.jpg, d2.jpg)"),
        ("twice.jpg", None, "duplicate_file_name", "listed 2 times (image id 9 in instances.json, image id 10"),
        ("missing.jpg", None, "missing_image", "image file not found"),
        ("garbage.jpg", None, "unreadable_image", "neither PIL nor OpenCV decodes it"),
        ("cut.jpg", None, "truncated_image", "image file is truncated"),
        ("cut.png", None, "truncated_image", "cannot decode the image"),
        ("wrong_size.jpg", None, "image_size_mismatch", "the file is 60x48 (width x height) but"),
        (j, None, "class_without_boxes", "class 'bird' (label 3) has no box in this split"),
    ]
    return ann_file, img, planted


def test_one_pass_finds_every_planted_problem_and_nothing_else(tmp_path: Path) -> None:
    ann_file, img, planted = plant(tmp_path)
    dataset = CocoDataset(ann_file, img, on_bad_data="skip")
    assert found(dataset.problems) == {(f, w, k) for f, w, k, _ in planted}
    assert len(counted(dataset.problems)) == len(planted)  # each once
    for problem in dataset.problems:
        reason = next(
            r for f, w, k, r in planted if (f, w, k) == (Path(problem.file).name, problem.where, problem.kind)
        )
        assert reason in problem.reason, (problem, reason)
    report = check_dataset(dataset)
    assert report["num_warnings"] == 2 and report["num_errors"] == len(planted) - 2
    assert [p["image"] for p in report["problems"] if p["where"] == "annotation id 3"] == ["good1.jpg"]

    # Under "error" one exception names every error, with its file and place, before anything trains.
    with pytest.raises(DataError) as error:
        CocoDataset(ann_file, img)
    message = str(error.value)
    assert f"{ann_file}: 16 problem(s) in the data (and 2 warning(s))" in message
    for file, where, kind, _ in planted:
        if kind not in ("box_partly_outside", "class_without_boxes"):
            assert f"{file}, {where}" in message if where else f"{file}: " in message, (file, where)
            assert f"[{kind}]" in message


def test_skip_drops_exactly_the_bad_items_and_keeps_negatives(tmp_path: Path) -> None:
    ann_file, img, _ = plant(tmp_path)
    report_file = tmp_path / "run" / "data_problems.jsonl"
    with problem_report(report_file):
        dataset = CocoDataset(ann_file, img, on_bad_data="skip")
    # Kept: good1 (its good box and the clipped one), good2, the empty image, the first twice.jpg.
    assert [r.image_id for r in dataset.records] == [1, 2, 3, 9]
    assert [len(r.boxes) for r in dataset.records] == [2, 1, 0, 1]
    assert dataset.records[0].boxes.tolist() == [[2, 2, 22, 22], [50, 30, 64, 40]]
    assert dataset.records[3].boxes.tolist() == [[5, 5, 15, 15]]
    # Out: 8 bad boxes (annotations 3-9 and 16); 9 images (4-7, both 8s, the second 9, 11, the
    # malformed entry) holding 4 good boxes (annotations 11, 12, 14, 15).
    assert dataset.dropped == {"images": 9, "bad_boxes": 8, "boxes_in_dropped_images": 4}
    lines = [json.loads(line) for line in report_file.read_text().splitlines()]
    assert len(lines) == len(dataset.problems) and {line["source"] for line in lines} == {str(ann_file)}
    image, target = dataset[2]
    assert image.shape == (3, HEIGHT, WIDTH) and target["boxes"].shape == (0, 4)


def test_check_command_lists_everything_draws_pictures_and_exits_non_zero(tmp_path: Path, capsys) -> None:
    ann_file, img, planted = plant(tmp_path)
    (tmp_path / "val.json").write_text('{"images": [],\n  "categories": [}\n')  # malformed: line 2
    out = tmp_path / "check"
    code = detkit_main([
        "check", "data=coco", f"data.train.ann_file={ann_file}", f"data.train.img_dir={img}",
        f"data.val.ann_file={tmp_path / 'val.json'}", f"data.val.img_dir={img}", f"output_dir={out}",
    ])
    assert code == 1
    report = json.loads((out / "report.json").read_text())
    train_found = {(Path(p["file"]).name, p["where"], p["kind"]) for p in report["train"]["problems"]}
    assert train_found == {(f, w, k) for f, w, k, _ in planted}
    assert report["val"]["problems"] == [{
        "kind": "malformed_annotation_file", "file": str(tmp_path / "val.json"), "where": "line 2, column 18",
        "image": None, "reason": "not valid JSON: Expecting value", "fatal": True, "severity": "error",
        "action": "nothing can be loaded",
    }]
    for name in ("box_sizes", "box_aspect", "boxes_per_class"):
        assert (out / f"train_{name}.png").stat().st_size > 5000
    stderr = capsys.readouterr().err
    assert "train: 16 error(s), 2 warning(s)" in stderr and "val: 1 error(s), 0 warning(s)" in stderr
    assert f"ERROR   {ann_file}, annotation id 3 (image good1.jpg): zero or negative size" in stderr


def test_a_clean_split_exits_zero_and_warnings_only_fail_with_strict(tmp_path: Path) -> None:
    write_image(tmp_path / "img" / "a.jpg")
    ann_file = tmp_path / "clean.json"
    ann_file.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": WIDTH, "height": HEIGHT}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8]}],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],  # dog: no box, a warning
    }))
    paths = [f"data.train.ann_file={ann_file}", f"data.train.img_dir={tmp_path / 'img'}", "split=train"]
    assert detkit_main(["check", "data=coco", *paths]) == 0
    assert detkit_main(["check", "data=coco", *paths, "strict=true"]) == 1


def test_training_with_skip_drops_the_planted_items_and_trains(tmp_path: Path) -> None:
    ann_file, img, _ = plant(tmp_path)
    run = tmp_path / "run"
    paths = [f"data.{split}.{key}={value}" for split in ("train", "val")
             for key, value in (("ann_file", ann_file), ("img_dir", img))]
    cfg = load_config(["data=coco", *paths, *TINY_TRAIN, f"output_dir={run}"])
    with pytest.raises(Exception, match=r"(?s)16 problem\(s\) in the data.*annotation id 3"):
        train(cfg)  # the default, on_bad_data=error, stops before the first step
    cfg = load_config(["data=coco", *paths, *TINY_TRAIN, "data.on_bad_data=skip", f"output_dir={run}"])
    metrics = train(cfg)
    assert metrics["iterations"] == 2 and metrics["train_images"] == 4 and metrics["val_images"] == 4
    logged = (run / "log.txt").read_text()
    assert "dropped 8 bad box(es) and 9 image(s) (holding 4 more box(es))" in logged
    assert "kept 4 image(s) with 4 box(es)" in logged
