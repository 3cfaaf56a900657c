"""Every kind of problem planted in a VOC-layout dataset is found in one pass, with its file, its
object number (or split-file line, or XML position) and its reason; nothing else is reported; the
check command exits non-zero; with on_bad_data=skip exactly the planted items are dropped and
training runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detkit.cli import main as detkit_main
from detkit.data.formats.voc import VocDataset
from detkit.data.validation.problems import DataError
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

CLASSES = ["cat", "dog", "bird"]  # no bird anywhere: a class without boxes


def _object(name: str, box: dict[str, object]) -> str:
    coordinates = "".join(f"<{tag}>{value}</{tag}>" for tag, value in box.items())
    return f"<object><name>{name}</name><difficult>0</difficult><bndbox>{coordinates}</bndbox></object>"


def _box(xmin, ymin, xmax, ymax) -> dict[str, object]:
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def _xml(root: Path, stem: str, objects: list[str], file_name: str | None = None) -> None:
    (root / "Annotations" / f"{stem}.xml").write_text(
        f"<annotation>\n<filename>{file_name or stem + '.jpg'}</filename>\n"
        f"<size><width>{WIDTH}</width><height>{HEIGHT}</height><depth>3</depth></size>\n"
        + "\n".join(objects) + "\n</annotation>\n"
    )


def plant(root: Path) -> list[tuple[str, str | None, str, str]]:
    """A VOC folder under ``root``; returns what was planted: (file, where, kind, reason part)."""
    images = root / "JPEGImages"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for stem in ("v1", "v2", "v3", "v4", "v5"):
        write_image(images / f"{stem}.jpg")
    write_unreadable(images / "v7.jpg")
    write_truncated(images / "v8.jpg")
    write_image(images / "v9.jpg", width=WIDTH - 4)
    write_image(images / "shared.jpg")
    _xml(root, "v1", [
        _object("cat", _box(3, 3, 22, 22)),
        _object("dog", _box(50, 30, 70, 40)),  # 6 px over the right border: clipped, a warning
        _object("cat", _box(30, 10, 20, 20)),
        _object("cat", _box(80, 10, 90, 20)),
        _object("cat", _box("nan", 10, 20, 20)),
        _object("cat", _box(10, 10, 20, "inf")),
        _object("zebra", _box(10, 10, 20, 20)),
        _object("cat", {"xmin": 10, "ymin": 10, "xmax": 20}),
    ])
    _xml(root, "v2", [_object("dog", _box(6, 6, 35, 35))])
    _xml(root, "v3", [])  # no objects: a valid negative
    # v4: no XML at all
    (root / "Annotations" / "v5.xml").write_text(
        "<annotation>\n  <size><width>64</width></size>\n  <object>\n</annotation>\n"
    )
    _xml(root, "v6", [_object("cat", _box(6, 6, 15, 15))])  # v6.jpg does not exist
    _xml(root, "v7", [_object("cat", _box(6, 6, 15, 15))])
    _xml(root, "v8", [_object("cat", _box(6, 6, 15, 15))])
    _xml(root, "v9", [_object("cat", _box(6, 6, 15, 15))])
    _xml(root, "v10", [_object("dog", _box(6, 6, 15, 15))], file_name="shared.jpg")
    _xml(root, "v11", [_object("dog", _box(20, 6, 29, 15))], file_name="shared.jpg")
    (root / "ImageSets" / "Main" / "train.txt").write_text(
        "v1\nv2\nv3\nv4\nv5\nv6\nv7\nv8\nv9\nv2\nv10\nv11\n"
    )
    return [
        (
            "v1.xml",
            "object 2",
            "box_partly_outside",
            "reaches 6 px outside the 64x48 image; clipped to [49, 29, 64, 40]",
        ),
        ("v1.xml", "object 3", "bad_box_size", "zero or negative size (width -9, height 11 px): box [30, 10, 20, 20]"),
        (
            "v1.xml",
            "object 4",
            "box_outside_image",
            "box [80, 10, 90, 20] (VOC xmin, ymin, xmax, ymax) lies wholly outside",
        ),
        ("v1.xml", "object 5", "non_finite_coordinate", "a coordinate is NaN or infinite: box [nan, 10, 20, 20]"),
        ("v1.xml", "object 6", "non_finite_coordinate", "a coordinate is NaN or infinite: box [10, 10, 20, inf]"),
        ("v1.xml", "object 7", "unknown_class", "class name 'zebra' is not one of the dataset's classes"),
        ("v1.xml", "object 8", "malformed_box", "<bndbox> has no <ymax>"),
        ("v4.xml", None, "missing_annotation_file", "VOC annotation file not found ('v4' is in the split)"),
        ("v5.xml", "line 4, column 3", "malformed_annotation_file", "not valid XML: mismatched tag"),
        ("v6.jpg", None, "missing_image", "image file not found"),
        ("v7.jpg", None, "unreadable_image", "neither PIL nor OpenCV decodes it"),
        ("v8.jpg", None, "truncated_image", "image file is truncated"),
        ("v9.jpg", None, "image_size_mismatch", "the file is 60x48 (width x height) but"),
        ("train.txt", "line 10", "duplicate_image_id", "'v2' is listed again (first on line 2); the repeat is dropped"),
        ("shared.jpg", None, "duplicate_file_name", "listed 2 times (image id 10 in v10.xml, image id 11 in v11.xml)"),
        ("train.txt", None, "class_without_boxes", "class 'bird' (label 3) has no box in this split"),
    ]


def test_one_pass_finds_every_planted_problem_and_nothing_else(tmp_path: Path) -> None:
    planted = plant(tmp_path)
    dataset = VocDataset(tmp_path, "train", class_names=CLASSES, on_bad_data="skip")
    assert found(dataset.problems) == {(f, w, k) for f, w, k, _ in planted}
    assert len(counted(dataset.problems)) == len(planted)
    for problem in dataset.problems:
        reason = next(
            r for f, w, k, r in planted if (f, w, k) == (Path(problem.file).name, problem.where, problem.kind)
        )
        assert reason in problem.reason, (problem, reason)
    assert {p.image for p in dataset.problems if Path(p.file).name == "v1.xml"} == {"v1.jpg"}
    with pytest.raises(DataError) as error:
        VocDataset(tmp_path, "train", class_names=CLASSES)
    message = str(error.value)
    assert "train.txt: 14 problem(s) in the data (and 2 warning(s))" in message
    assert all(f"[{k}]" in message for _, _, k, _ in planted if k not in ("box_partly_outside", "class_without_boxes"))


def test_skip_drops_exactly_the_bad_items_and_keeps_negatives(tmp_path: Path) -> None:
    plant(tmp_path)
    dataset = VocDataset(tmp_path, "train", class_names=CLASSES, on_bad_data="skip")
    # Kept: v1 (its good box and the clipped one), v2, the empty v3, v10 (the first to list shared.jpg).
    assert [dataset.file_stems[r.image_id] for r in dataset.records] == ["v1", "v2", "v3", "v10"]
    assert [len(r.boxes) for r in dataset.records] == [2, 1, 0, 1]
    assert dataset.records[0].boxes.tolist() == [[2, 2, 22, 22], [49, 29, 64, 40]]
    # Out: 6 bad boxes of v1; 8 images: v4, v5, v6, v7, v8, v9, the second v2, v11 (one good box each
    # in v6, v7, v8, v9 and v11; v4 and v5 have no readable boxes, the repeated v2 is not read again).
    assert dataset.dropped == {"images": 8, "bad_boxes": 6, "boxes_in_dropped_images": 5}


def test_check_command_lists_everything_and_exits_non_zero(tmp_path: Path, capsys) -> None:
    planted = plant(tmp_path / "voc")
    output = tmp_path / "check" / "voc_report.json"
    code = detkit_main(["check", "data=voc", f"data.root={tmp_path / 'voc'}", "data.train.split=train",
                        "data.val.split=missing", f"data.class_names=[{','.join(CLASSES)}]", f"output={output}"])
    assert code == 1
    report = json.loads(output.read_text())
    assert {(Path(p["file"]).name, p["where"], p["kind"]) for p in report["train"]["problems"]} == {
        (f, w, k) for f, w, k, _ in planted}
    assert [(Path(p["file"]).name, p["kind"], p["action"]) for p in report["val"]["problems"]] == [
        ("missing.txt", "missing_annotation_file", "nothing can be loaded")]
    assert report["train"]["num_images"] == 4 and report["train"]["num_boxes"] == 4
    assert report["train"]["dropped_by_skip"]["images"] == 8
    for name in ("box_sizes", "box_aspect", "boxes_per_class"):  # beside the report, named after it
        assert (tmp_path / "check" / f"voc_report_train_{name}.png").is_file()
    assert "train: 14 error(s), 2 warning(s)" in capsys.readouterr().err


def test_training_with_skip_drops_the_planted_items_and_trains(tmp_path: Path) -> None:
    plant(tmp_path / "voc")
    run = tmp_path / "run"
    data = ["data=voc", f"data.root={tmp_path / 'voc'}", "data.train.split=train", "data.val.split=train",
            f"data.class_names=[{','.join(CLASSES)}]", "data.on_bad_data=skip"]
    metrics = train(load_config([*data, *TINY_TRAIN, f"output_dir={run}"]))
    assert metrics["iterations"] == 2 and metrics["train_images"] == 4 and metrics["val_images"] == 4
    logged = (run / "log.txt").read_text()
    assert "dropped 6 bad box(es) and 8 image(s) (holding 5 more box(es))" in logged
    problems = [json.loads(line) for line in (run / "data_problems.jsonl").read_text().splitlines()]
    assert len(problems) == 2 * 16  # the train and the val split (the same files), every problem once each
