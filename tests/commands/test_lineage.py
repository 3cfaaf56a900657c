"""``detkit lineage``: two tiny trained runs (Fast R-CNN on cached proposals, YOLOv1) in one table,
JSON and picture, their numbers those of metrics.json; folders that are not finished runs refused
with one line naming what is missing."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from detkit.analysis.lineage.report import (
    MARKER_HALF,
    _label_box,
    _label_offsets,
    _overlap,
    duration,
    plot_lineage,
)
from detkit.analysis.lineage.table import BASELINE, ONE_STAGE, OTHER, TWO_STAGE, detector_of, read_run
from detkit.cli import main
from detkit.engine.config import ConfigError, config_dir, load_config
from detkit.jobs.train_and_evaluate import train

TINY = [
    "data.num_train=8",
    "data.num_val=4",
    "data.image_size=96",
    "data.input_size=96",
    "data.num_workers=0",
    "data.batch_size=4",
    "engine.max_iters=2",
    "engine.vis_images=0",
    "engine.tensorboard=false",
    "engine.num_threads=1",
    "scheduler.warmup_iters=1",
]
EXPERIMENTS = {
    "fast_rcnn_mobilenet_v1_shapes": ["data.proposals.wrapper.num_workers=0"],
    "yolov1_mobilenet_v1_shapes": [],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The run folders of two 2-iteration trainings, with the data and proposal caches kept for the tests."""
    root = tmp_path_factory.mktemp("lineage")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETKIT_CACHE", str(root / "cache"))
        patch.setenv("DETKIT_PROPOSAL_CACHE", str(root / "proposals"))
        folders = []
        for experiment, extra in EXPERIMENTS.items():
            folder = root / experiment
            train(load_config([f"config={experiment}", *TINY, *extra, f"output_dir={folder}"]))
            folders.append(folder)
        torch.set_num_threads(threads)  # engine.num_threads=1 set it for the whole process
        yield folders


def test_one_row_per_run_with_the_runs_numbers(runs, tmp_path, capsys) -> None:
    output = tmp_path / "out"
    threads = torch.get_num_threads()
    argv = [
        f"runs={','.join(map(str, runs))}",
        f"output={output}",
        "images=4",
        "batch_sizes=1,2",
        "threads=1",
        "repeats=2",
    ]
    assert main(["lineage", *argv]) == 0
    assert torch.get_num_threads() == threads  # the measurement's thread count does not outlive it

    report = json.loads((output / "lineage.json").read_text())
    assert report["machine"]["threads"] == 1 and report["machine"]["torch"] == torch.__version__
    assert [row["run_dir"] for row in report["rows"]] == [str(folder) for folder in runs]
    for row, folder in zip(report["rows"], runs, strict=True):
        metrics = json.loads((folder / "metrics.json").read_text())
        assert row["experiment"] == metrics["experiment"] == folder.name
        assert row["voc12_mAP"] == metrics["voc12"]["mAP"] and row["coco_AP"] == metrics["coco"]["AP"]
        assert row["train_seconds"] == metrics["train_seconds"] and row["iterations"] == metrics["iterations"] == 2
        assert row["checkpoint"] == str(folder / "last.pt")
        for batch in ("1", "2"):
            rate = row["images_per_s"][batch]
            assert 0 < rate["min"] <= rate["median"] <= rate["max"] and rate["images"] == 4
    fast, yolo = report["rows"]
    assert (fast["detector"], fast["family"], fast["cached_proposals"]) == ("Fast R-CNN", TWO_STAGE, True)
    assert (yolo["detector"], yolo["family"], yolo["cached_proposals"]) == ("YOLOv1", ONE_STAGE, False)

    table = (output / "lineage.md").read_text()
    assert table in capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [line.split("`")[1] for line in rows] == list(EXPERIMENTS)
    assert "Fast R-CNN †" in rows[0] and "†" not in rows[1] and "excluded from images/s" in table
    assert "images/s batch 1 | images/s batch 2 |" in table and "1 CPU threads" in table

    assert (output / "lineage.png").read_bytes()[:4] == b"\x89PNG"
    points = plot_lineage(report, tmp_path / "again.png")
    assert [(p["x"], p["y"]) for p in points] == [
        (r["images_per_s"]["1"]["median"], r["voc12_mAP"]) for r in report["rows"]
    ]


def test_a_folder_that_is_not_a_finished_run_is_named(runs, tmp_path, capsys) -> None:
    no_metrics, no_checkpoint = tmp_path / "no_metrics", tmp_path / "no_checkpoint"
    no_metrics.mkdir()
    no_checkpoint.mkdir()
    shutil.copy(runs[1] / "last.pt", no_metrics)
    shutil.copy(runs[1] / "metrics.json", no_checkpoint)
    # The good run comes first: every folder is checked before anything is measured.
    for folder, missing in (
        (no_metrics, "no metrics.json"),
        (no_checkpoint, "no last.pt"),
        (tmp_path / "typo", "not found"),
    ):
        assert main(["lineage", f"runs={runs[1]},{folder}", f"output={tmp_path / 'out'}"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and str(folder) in error and missing in error, error
    assert not (tmp_path / "out").exists()


def test_metrics_of_other_weights_than_last_pt_are_refused(runs, tmp_path) -> None:
    folder = tmp_path / "resumed"
    folder.mkdir()
    shutil.copy(runs[1] / "last.pt", folder)
    metrics = json.loads((runs[1] / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "iterations": 5}))
    with pytest.raises(ConfigError, match="holds iteration 2 but .* after 5"):
        read_run(folder)
    assert read_run(runs[1]).checkpoint == runs[1] / "last.pt"


def test_every_shapes_experiment_has_a_family() -> None:
    experiments = sorted(path.stem for path in (config_dir() / "config").glob("*_shapes*.yaml"))
    assert len(experiments) > 30
    assert all(detector_of(name, torch.nn.Identity())[1] != OTHER for name in experiments)
    assert detector_of("faster_rcnn_fpn_resnet18_shapes", torch.nn.Identity()) == ("Faster R-CNN + FPN", TWO_STAGE)
    assert detector_of("rcnn_vgg16_voc07", torch.nn.Identity()) == ("R-CNN", TWO_STAGE)
    assert detector_of("ssd300_vgg16_voc0712", torch.nn.Identity()) == ("SSD", ONE_STAGE)
    assert detector_of("localizer_lenet_shapes_single", torch.nn.Identity()) == ("single-object localiser", BASELINE)
    assert detector_of("my_own", torch.nn.Identity()) == ("Identity", OTHER)
    assert (duration(279.4), duration(42), duration(3725)) == ("4 min 39 s", "42 s", "1 h 2 min")


def test_labels_of_clustered_points_stack_and_lone_labels_stay() -> None:
    # Markers on the page in points: three close together (as SPP-net, Fast and Faster R-CNN sit),
    # one far away. With 7 pt text a 10-character label is 42 pt wide and 7 pt tall.
    positions = [(100.0, 200.0), (96.0, 198.0), (104.0, 196.0), (400.0, 198.0)]
    labels = ["A" * 10] * 4
    offsets = _label_offsets(positions, labels)
    # The highest keeps its label just above its marker, the lone one too. One line down (-5) the
    # second's label would cover the markers of the first and third, so it goes two lines down; the
    # third's fits one line down, between the second's label and the first's marker.
    assert offsets == [4.0, -14.0, -5.0, 4.0]
    boxes = [
        _label_box(x, y, label, offset, 7.0) for (x, y), label, offset in zip(positions, labels, offsets, strict=True)
    ]
    markers = [(x - MARKER_HALF, y - MARKER_HALF, x + MARKER_HALF, y + MARKER_HALF) for x, y in positions]
    for i, box in enumerate(boxes):
        assert all(_overlap(box, other) == 0.0 for j, other in enumerate(boxes) if j != i)
        assert all(_overlap(box, marker) == 0.0 for j, marker in enumerate(markers) if j != i)
    # A label whose first place would cover another run's marker moves: a marker just right of A.
    assert _label_offsets([(100.0, 200.0), (120.0, 206.0)], ["A" * 10, "B"])[0] != 4.0
