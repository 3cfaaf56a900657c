"""Galleries of the worst images per error cause: which images, in which order, drawn where."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from detkit.evaluation.errors import assign_errors
from detkit.evaluation.inputs import load_detections, load_ground_truth
from detkit.reporting.error_report import CAUSE_COLOURS
from detkit.reporting.galleries import PANEL_SIZE, worst_images, write_error_galleries

A = [0, 0, 100, 100]
B = [200, 200, 300, 300]
FAR = [400, 300, 440, 340]


@pytest.fixture
def case(make_gt, make_dets, tmp_path):
    """Image 1: two background errors (0.5, 0.4); image 2: one at 0.95; image 3: one at 0.2 and a
    missed object; image 4: clean. Images are grey 640 x 480 files named <id>.jpg."""
    gt = make_gt([(1, 1, A), (2, 1, A), (3, 1, A), (3, 1, B), (4, 1, A)])
    dets = make_dets(
        [
            (1, 1, A, 0.95),
            (1, 1, FAR, 0.5),
            (1, 1, [500, 100, 540, 140], 0.4),
            (2, 1, A, 0.95),
            (2, 1, FAR, 0.95),
            (3, 1, A, 0.95),
            (3, 1, FAR, 0.2),
            (4, 1, A, 0.95),
        ]
    )
    for image_id in (1, 2, 3, 4):
        cv2.imwrite(str(tmp_path / f"{image_id}.jpg"), np.full((480, 640, 3), 128, np.uint8))
    return gt, dets


def test_worst_images_rank_by_summed_score(case):
    gt, dets = case
    ground_truth = load_ground_truth(gt)
    detections = load_detections(dets, ground_truth)
    assignment = assign_errors(ground_truth, detections)
    # one confident error (0.95) costs more than two timid ones (0.5 + 0.4)
    assert worst_images(ground_truth, detections, assignment, "background") == [(2, 1), (1, 2), (3, 1)]
    assert worst_images(ground_truth, detections, assignment, "background", 2) == [(2, 1), (1, 2)]
    assert worst_images(ground_truth, detections, assignment, "missed") == [(3, 1)]
    assert worst_images(ground_truth, detections, assignment, "duplicate") == []


def test_galleries_are_drawn_in_the_cause_colours(case, tmp_path):
    gt, dets = case
    paths = {image_id: tmp_path / f"{image_id}.jpg" for image_id in (1, 2, 3, 4)}
    written = write_error_galleries(gt, dets, paths, tmp_path / "report", count=2)
    assert set(written) == {"background", "missed"}
    assert [entry["image_id"] for entry in written["background"]["images"]] == [2, 1]
    sheet = cv2.imread(str(tmp_path / "report" / written["background"]["file"]))
    scale = PANEL_SIZE / 640
    assert sheet.shape[1] > 2 * PANEL_SIZE  # two panels side by side
    # the right edge of the far box in the first panel (image 2; below its 26-pixel title strip)
    y, x = 26 + round(330 * scale), round(440 * scale)
    blue, green, red = (int(v) for v in sheet[y, x])
    expected = CAUSE_COLOURS["background"].lstrip("#")
    assert abs(red - int(expected[0:2], 16)) < 40 and abs(blue - int(expected[4:6], 16)) < 40
    # grey image elsewhere
    assert np.abs(sheet[26 + 200, 300].astype(int) - 128).max() < 20


def test_missing_image_file_is_named(case, tmp_path):
    gt, dets = case
    with pytest.raises(FileNotFoundError, match="nowhere.jpg"):
        write_error_galleries(gt, dets, {1: tmp_path / "nowhere.jpg"}, tmp_path / "report")


def test_eval_command_draws_galleries_with_images(case, tmp_path):
    from detkit.cli import main

    gt, dets = case
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    report = tmp_path / "report"
    args = [
        "eval",
        f"ground_truth={tmp_path / 'gt.json'}",
        f"detections={tmp_path / 'dt.json'}",
        f"report={report}",
    ]
    assert main([*args, f"images={tmp_path}"]) == 0
    assert sorted(p.name for p in report.glob("errors_*.jpg")) == [
        "errors_background.jpg",
        "errors_missed.jpg",
    ]
    assert main([*args, f"images={tmp_path / 'absent'}"]) == 2
