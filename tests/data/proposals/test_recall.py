"""Proposal recall on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detkit.data.proposals.recall import RecallMeter, best_overlaps


def test_best_overlaps_by_hand_and_against_torchvision() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 40]], dtype=np.float32)
    proposals = np.array(
        [[0, 0, 10, 5], [0, 0, 10, 20], [20, 20, 30, 40], [100, 100, 110, 110]], dtype=np.float32
    )
    # gt 0: halves of it (IoU 0.5) and a box twice its size (IoU 0.5); gt 1: an exact match.
    assert best_overlaps(gt, proposals) == pytest.approx([0.5, 1.0])
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, (2, 30, 2))
    boxes = np.concatenate((corners.min(0), corners.max(0) + 1), axis=1).astype(np.float32)
    expected = box_iou(torch.from_numpy(boxes[:7]), torch.from_numpy(boxes[7:])).max(dim=1).values.numpy()
    assert best_overlaps(boxes[:7], boxes[7:]) == pytest.approx(expected, abs=1e-6)


def test_recall_meter_hand_made_case() -> None:
    meter = RecallMeter()
    # Image 1: gt A covered at IoU 0.6 (counts at 0.5 only), gt B covered exactly.
    meter.update(
        np.array([[0, 0, 10, 10], [50, 50, 60, 60]]),
        np.array([[0, 0, 10, 6], [50, 50, 60, 60], [0, 0, 1, 1]]),
    )
    # Image 2: one gt box, only a proposal at IoU 0.25; image 3: no objects, 2 proposals.
    meter.update(np.array([[0, 0, 20, 20]]), np.array([[0, 0, 10, 10]]))
    meter.update(np.zeros((0, 4)), np.array([[0, 0, 5, 5], [1, 1, 9, 9]]))
    summary = meter.summary()
    assert summary["recall@0.5"] == pytest.approx(2 / 3)
    assert summary["recall@0.7"] == pytest.approx(1 / 3)
    assert summary["mean_best_iou"] == pytest.approx((0.6 + 1.0 + 0.25) / 3)
    assert summary["boxes_per_image"] == pytest.approx(6 / 3)
    assert summary["gt_per_image"] == pytest.approx(1.0)
    assert (summary["images"], summary["gt_boxes"]) == (3, 3)


def test_no_proposals_means_zero_recall_and_no_gt_means_undefined() -> None:
    meter = RecallMeter(thresholds=(0.5,))
    meter.update(np.array([[0, 0, 4, 4]]), np.zeros((0, 4)))
    assert meter.summary()["recall@0.5"] == 0.0
    empty = RecallMeter()
    empty.update(np.zeros((0, 4)), np.array([[0, 0, 4, 4]]))
    assert empty.summary()["recall@0.5"] is None
