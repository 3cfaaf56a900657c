"""The parity check itself: hand-made detections whose differences are known."""

from __future__ import annotations

import numpy as np
import torch

from detkit.export.check import compare_detections
from detkit.export.samples import padded_proposals

REFERENCE = [
    {
        "boxes": np.array([[10, 10, 50, 50], [0, 5, 20, 30], [60, 60, 90, 100]], np.float32),
        "scores": np.array([0.9, 0.7, 0.7], np.float32),
        "labels": np.array([1, 2, 3]),
    },
    {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32), "labels": np.zeros(0, np.int64)},
]


def exported(max_detections: int = 4) -> list[np.ndarray]:
    """The reference as padded outputs, with the two tied detections in the other order."""
    boxes = np.zeros((2, max_detections, 4), np.float32)
    scores = np.zeros((2, max_detections), np.float32)
    labels = np.zeros((2, max_detections), np.int64)
    order = [0, 2, 1][:max_detections]
    count = len(order)
    boxes[0, :count] = REFERENCE[0]["boxes"][order]
    scores[0, :count] = REFERENCE[0]["scores"][order]
    labels[0, :count] = REFERENCE[0]["labels"][order]
    return [boxes, scores, labels, np.array([count, 0])]


def test_identical_up_to_tie_order() -> None:
    result = compare_detections(exported(), REFERENCE, max_detections=4)
    assert result["max_box_diff"] == 0.0 and result["max_score_diff"] == 0.0
    assert result["counts_agree"] and result["labels_agree"] and result["padding_zero"]
    assert result["counts_exported"] == result["counts_pytorch"] == [3, 0]
    assert result["detections"] == 3


def test_differences_are_measured() -> None:
    outputs = exported()
    outputs[0][0, 0, 2] += 0.25  # the top box's x2
    outputs[1][0, 0] -= 0.001
    result = compare_detections(outputs, REFERENCE, max_detections=4)
    assert np.isclose(result["max_box_diff"], 0.25) and np.isclose(result["max_score_diff"], 0.001)
    outputs = exported()
    outputs[2][0, 0] = 4
    assert not compare_detections(outputs, REFERENCE, max_detections=4)["labels_agree"]
    outputs = exported()
    outputs[3][0] = 2  # one detection fewer; the row behind the count is no longer zero either
    result = compare_detections(outputs, REFERENCE, max_detections=4)
    assert not result["counts_agree"] and not result["padding_zero"]
    assert result["counts_exported"] == [2, 0]


def test_reference_is_capped_at_max_detections() -> None:
    # K = 1: the file keeps only the best detection, which is what it is compared with.
    result = compare_detections(exported(max_detections=1), REFERENCE, max_detections=1)
    assert result["counts_agree"] and result["max_box_diff"] == 0.0 and result["counts_pytorch"] == [1, 0]


def test_padded_proposals() -> None:
    boxes, counts = padded_proposals([torch.ones(2, 4), torch.zeros(0, 4), 2 * torch.ones(3, 4)])
    assert boxes.shape == (3, 3, 4) and counts.tolist() == [2, 0, 3]
    assert boxes[0, :2].eq(1).all() and not boxes[0, 2:].any() and boxes[2].eq(2).all()
    boxes, counts = padded_proposals([torch.zeros(0, 4)])
    assert boxes.shape == (1, 1, 4) and counts.tolist() == [0]


def test_tie_broken_the_other_way_is_told_apart() -> None:
    # The runtime kept another candidate of the same score and label, overlapping the reference's.
    outputs = exported()
    outputs[0][0, 2] = [2, 7, 24, 33]  # the 0.7 label-2 box, moved by up to 4 px
    result = compare_detections(outputs, REFERENCE, max_detections=4)
    assert result["tie_breaks"] == 1 and np.isclose(result["max_box_diff"], 4.0)
    assert result["max_box_diff_untied"] == 0.0 and result["labels_agree"]
    # The same move without overlap is a wrong box, not a tie.
    outputs[0][0, 2] = [100, 100, 120, 125]
    result = compare_detections(outputs, REFERENCE, max_detections=4)
    assert result["tie_breaks"] == 0 and result["max_box_diff_untied"] == result["max_box_diff"] == 100.0
