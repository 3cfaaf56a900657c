"""AMP box parity: matching fp32 and AMP detections, on hand-made boxes, and one detector under
CPU bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from detkit.analysis.device.amp_parity import amp_box_parity, corner_shifts
from detkit.analysis.device.check_batches import shapes_batch
from detkit.engine.build import build_model, load_config


def _det(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels)}  # fmt: skip


def test_matched_pairs_and_their_corner_shifts_by_hand():
    reference = [_det([[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [1, 2, 1])]
    # Box 0 moved by 0.25 px at one corner; box 1 by 1 px; box 2 exists only with another label.
    other = [_det([[20, 20, 41, 40], [0, 0, 10.25, 10], [50, 50, 60, 60]], [0.8, 0.9, 0.7], [2, 1, 3])]
    result = corner_shifts(reference, other)
    assert result["compared"] == 3 and result["matched"] == 2
    assert result["max_px"] == pytest.approx(1.0) and result["mean_px"] == pytest.approx(0.625)


def test_a_neighbour_standing_in_for_a_suppressed_box_is_not_matched():
    # AMP kept only the neighbour B' of two fp32 boxes A, B: B' matches B (its mutual best), not A.
    reference = [_det([[0, 0, 10, 10], [3, 0, 13, 10]], [0.9, 0.8], [1, 1])]
    other = [_det([[3, 0, 13, 10]], [0.9], [1])]
    result = corner_shifts(reference, other)
    assert result["matched"] == 1 and result["max_px"] == 0.0


def test_top_k_and_empty_images():
    reference = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.1, 0.9], [1, 1]), _det([], [], [])]
    other = [_det([[20, 20, 30, 31]], [0.9], [1]), _det([], [], [])]
    result = corner_shifts(reference, other, top_k=1)
    assert result["compared"] == 1 and result["matched"] == 1 and result["max_px"] == 1.0
    nothing = corner_shifts([_det([], [], [])], [_det([], [], [])])
    assert nothing == {"compared": 0, "matched": 0, "max_px": None, "p95_px": None, "mean_px": None}


def test_shapes_batch_is_uint8_with_targets_and_proposals():
    images, targets = shapes_batch(96, 3, proposals_per_image=20)
    assert images.shape == (3, 3, 96, 96) and images.dtype == torch.uint8
    for target in targets:
        assert len(target["boxes"]) >= 1 and target["proposals"].shape == (20, 4)
        assert (target["proposals"][:, 2:] > target["proposals"][:, :2]).all()
        assert target["proposals"].min() >= 0 and target["proposals"].max() <= 96


def test_yolov1_boxes_hold_under_cpu_bf16_autocast():
    # YOLOv1 decodes its boxes in float32 from the grid: bf16 features move them by far under 0.5 px.
    cfg = load_config(["config=yolov1_resnet18_shapes", "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=5)
    images, _ = shapes_batch(160, 1)  # the size the recipe takes on the built-in shapes
    result = amp_box_parity(model, images, None, torch.device("cpu"), torch.bfloat16, top_k=50)
    assert result["compared"] == 50 and result["matched"] >= 45 and result["max_px"] < 0.5
