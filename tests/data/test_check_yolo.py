"""Every kind of problem planted in a YOLO-layout dataset is found in one pass, with its file, its
line and its reason; nothing else is reported; the check exits non-zero (here also as a user runs
it, ``python tools/check_dataset.py``); with on_bad_data=skip exactly the planted items are
dropped and training runs.

Not plantable here: an annotated size that disagrees with the image (YOLO labels are normalised
and the size is read from the image itself) and an unknown class name (classes are indices)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.data.formats.yolo import YoloDataset
from detkit.data.validation.problems import DataError
from detkit.engine.config import load_config
from detkit.jobs.train_and_evaluate import train
from tests.data.planted import TINY_TRAIN, counted, found, write_image, write_truncated, write_unreadable
from tests.tools.tool_runner import run_tool, tool_env

LABELS = {
    "y1": [
        "0 0.2 0.25 0.25 0.3",
        "1 0.9 0.7 0.3 0.2",  # reaches 0.05 * 64 = 3.2 px over the right border: clipped, a warning
        "0 0.5 0.5 0 0.2",
        "0 0.5 0.5 0.2 -0.1",
        "0 1.6 0.5 0.2 0.2",
        "0 nan 0.5 0.2 0.2",
        "0 0.5 0.5 inf 0.2",
        "7 0.5 0.5 0.2 0.2",
        "-1 0.5 0.5 0.2 0.2",
        "1.5 0.5 0.5 0.2 0.2",
        "0 0.5 abc 0.2 0.2",
        "0 0.5 0.5 0.2",
        "0 0.5 0.5 0.2 0.2 0.1",
    ],
    "y2": ["1 0.5 0.5 0.5 0.5"],
    "y3": [],  # an empty label file: a valid negative
    "y5": ["0 0.5 0.5 0.2 0.2"],
    "y6": ["0 0.5 0.5 0.2 0.2"],
    "y7": ["0 0.5 0.5 0.2 0.2"],
    "y8": ["0 0.5 0.5 0.2 0.2"],
    "y9": ["1 0.5 0.5 0.2 0.2"],
}


def plant(root: Path) -> tuple[Path, list[tuple[str, str | None, str, str]]]:
    """A YOLO dataset under ``root``; returns its data YAML and what was planted."""
    for stem in ("y1", "y2", "y3", "y4"):
        write_image(root / "images" / f"{stem}.jpg")
    write_unreadable(root / "images" / "y6.jpg")
    write_truncated(root / "images" / "y7.jpg")
    write_truncated(root / "images" / "y8.png")
    write_image(root / "images" / "y9.jpg")
    write_image(root / "images" / "y9.png")
    (root / "labels").mkdir()
    for stem, lines in LABELS.items():
        (root / "labels" / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    listed = ["y1.jpg", "y2.jpg", "y3.jpg", "y4.jpg", "y5.jpg", "y6.jpg", "y7.jpg", "y8.png", "y2.jpg",
              "y9.jpg", "y9.png"]
    (root / "train.txt").write_text("".join(f"images/{name}\n" for name in listed))
    data_yaml = root / "data.yaml"
    data_yaml.write_text("path: .\ntrain: train.txt\nval: train.txt\nnames: [cat, dog, bird]\n")
    box = "(YOLO cx, cy, w, h normalised)"
    return data_yaml, [
        ("y1.txt", "line 2", "box_partly_outside", f"box [0.9, 0.7, 0.3, 0.2] {box} reaches 3.2 px outside the 64x48"),
        ("y1.txt", "line 3", "bad_box_size", "zero or negative size (width 0, height 9.6 px)"),
        ("y1.txt", "line 4", "bad_box_size", "zero or negative size (width 12.8, height -4.8 px)"),
        ("y1.txt", "line 5", "box_outside_image", f"box [1.6, 0.5, 0.2, 0.2] {box} lies wholly outside the 64x48"),
        ("y1.txt", "line 6", "non_finite_coordinate", "a coordinate is NaN or infinite: box [nan, 0.5, 0.2, 0.2]"),
        ("y1.txt", "line 7", "non_finite_coordinate", "a coordinate is NaN or infinite: box [0.5, 0.5, inf, 0.2]"),
        ("y1.txt", "line 8", "class_out_of_range", "class index 7 is outside 0..2 (3 names)"),
        ("y1.txt", "line 9", "class_out_of_range", "class index -1 is outside 0..2 (3 names)"),
        ("y1.txt", "line 10", "malformed_value", "class '1.5' is not an integer"),
        ("y1.txt", "line 11", "malformed_value", "'abc' is not a number in '0 0.5 abc 0.2 0.2'"),
        ("y1.txt", "line 12", "wrong_field_count", "4 fields in '0 0.5 0.5 0.2'; expected 'class cx cy w h' (5)"),
        ("y1.txt", "line 13", "wrong_field_count", "6 fields in '0 0.5 0.5 0.2 0.2 0.1'"),
        ("y4.txt", None, "missing_label_file", "no label file: the image is used as an image without objects"),
        ("y5.jpg", None, "missing_image", "image file not found (listed in the 'train' split of"),
        ("y6.jpg", None, "unreadable_image", "neither PIL nor OpenCV decodes it"),
        ("y7.jpg", None, "truncated_image", "image file is truncated"),
        ("y8.png", None, "truncated_image", "cannot decode the image"),
        ("y2.jpg", None, "duplicate_file_name", "listed 2 times in the 'train' split"),
        ("y9.txt", None, "duplicate_file_name", "images y9.jpg, y9.png share this label file"),
        ("data.yaml", None, "class_without_boxes", "class 'bird' (label 3) has no box in this split"),
    ]


def test_one_pass_finds_every_planted_problem_and_nothing_else(tmp_path: Path) -> None:
    data_yaml, planted = plant(tmp_path)
    dataset = YoloDataset(data_yaml, "train", on_bad_data="skip")
    assert found(dataset.problems) == {(f, w, k) for f, w, k, _ in planted}
    assert len(counted(dataset.problems)) == len(planted)
    for problem in dataset.problems:
        reason = next(
            r for f, w, k, r in planted if (f, w, k) == (Path(problem.file).name, problem.where, problem.kind)
        )
        assert reason in problem.reason, (problem, reason)
    with pytest.raises(DataError) as error:
        YoloDataset(data_yaml, "train")
    assert "data.yaml: 17 problem(s) in the data (and 3 warning(s))" in str(error.value)


def test_skip_drops_exactly_the_bad_items_and_keeps_negatives(tmp_path: Path) -> None:
    data_yaml, _ = plant(tmp_path)
    dataset = YoloDataset(data_yaml, "train", on_bad_data="skip")
    # Kept: y1 (its good box and the clipped one), y2, y3 (empty labels), y4 (no label file).
    assert [Path(r.file_name).name for r in dataset.records] == ["y1.jpg", "y2.jpg", "y3.jpg", "y4.jpg"]
    assert [len(r.boxes) for r in dataset.records] == [2, 1, 0, 0]
    np.testing.assert_allclose(dataset.records[0].boxes, [[4.8, 4.8, 20.8, 19.2], [48, 28.8, 64, 38.4]], rtol=1e-6)
    # Out: 11 bad lines of y1; 7 images: y5, y6, y7, y8, the second y2, y9.jpg and y9.png, with one
    # good box each for y5, y6, y7, y8 and the y9 pair.
    assert dataset.dropped == {"images": 7, "bad_boxes": 11, "boxes_in_dropped_images": 5}


def test_malformed_data_yaml_is_named_with_its_line_and_column(tmp_path: Path) -> None:
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text("path: .\ntrain: [images\nnames: [cat]\n")
    with pytest.raises(DataError) as error:
        YoloDataset(data_yaml, "train", on_bad_data="skip")  # nothing to skip to: no file, no data
    (problem,) = error.value.problems
    assert (problem.kind, problem.where, problem.fatal) == ("malformed_annotation_file", "line 3, column 6", True)
    assert problem.reason.startswith("not valid YAML: ")


def test_the_tool_exits_non_zero_listing_every_problem(tmp_path: Path) -> None:
    data_yaml, planted = plant(tmp_path / "yolo")
    result = run_tool("check_dataset.py", "data=yolo", f"data.yaml={data_yaml}", "split=train",
                      env=tool_env(tmp_path), check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert {(Path(p["file"]).name, p["where"], p["kind"]) for p in report["train"]["problems"]} == {
        (f, w, k) for f, w, k, _ in planted}
    assert "train: 17 error(s), 3 warning(s)" in result.stderr
    assert f"{tmp_path / 'yolo' / 'labels' / 'y1.txt'}, line 12 (image y1.jpg): 4 fields" in result.stderr


def test_training_with_skip_drops_the_planted_items_and_trains(tmp_path: Path) -> None:
    data_yaml, _ = plant(tmp_path / "yolo")
    run = tmp_path / "run"
    metrics = train(load_config(["data=yolo", f"data.yaml={data_yaml}", "data.on_bad_data=skip", *TINY_TRAIN,
                                 f"output_dir={run}"]))
    assert metrics["iterations"] == 2 and metrics["train_images"] == 4 and metrics["val_images"] == 4
    assert "dropped 11 bad box(es) and 7 image(s) (holding 5 more box(es))" in (run / "log.txt").read_text()
