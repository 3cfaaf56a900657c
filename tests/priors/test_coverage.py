"""Best possible recall of priors: hand-computed IoUs, the letterbox as the transform applies it,
and each detector family's priors as its model builds them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.data.augment.transforms import eval_transforms
from detkit.engine.build import build_model
from detkit.engine.config import load_config
from detkit.priors.coverage import Priors, best_prior_iou, letterboxed_boxes, model_priors, prior_coverage


def test_shape_priors_recall_by_hand() -> None:
    priors = Priors("yolov3", 0.5, "shape", shapes=torch.tensor([[10.0, 10.0], [20.0, 40.0]]))
    # (w, h): 10x10 fits exactly; 20x20 meets 20x40 at 400/800 = 0.5 (covered: the matcher's >=);
    # 5x5 meets 10x10 at 25/100; 40x80 meets 20x40 at 800/3200.
    gt = torch.tensor([[0, 0, 10, 10], [50, 50, 70, 70], [0, 0, 5, 5], [0, 0, 40, 80]], dtype=torch.float32)
    torch.testing.assert_close(best_prior_iou(gt, priors), torch.tensor([1.0, 0.5, 0.25, 0.25]))
    report = prior_coverage(gt, priors)
    assert report["recall"] == 0.5 and report["boxes"] == 4 and report["num_priors"] == 2
    # areas 100, 400, 25 are small (< 32²), 3200 medium
    assert report["per_scale"]["small"] == {"boxes": 3, "recall": round(2 / 3, 4)}
    assert report["per_scale"]["medium"] == {"boxes": 1, "recall": 0.0}
    assert report["per_scale"]["large"] == {"boxes": 0, "recall": None}
    assert report["mean_best_iou"] == 0.5


def test_placed_priors_recall_by_hand() -> None:
    priors = Priors(
        "rpn", 0.5, "placed", boxes=torch.tensor([[0.0, 0, 10, 10], [10, 0, 20, 10]]), matcher_threshold=0.7
    )
    # Same box (1.0); a box straddling both (50/150 with each); a box twice as tall (100/200 = 0.5).
    gt = torch.tensor([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 20]], dtype=torch.float32)
    torch.testing.assert_close(best_prior_iou(gt, priors), torch.tensor([1.0, 1 / 3, 0.5]))
    report = prior_coverage(gt, priors)
    assert report["recall"] == round(2 / 3, 4)
    assert report["recall_at_matcher_threshold"] == round(1 / 3, 4)


def test_letterbox_matches_the_eval_transform() -> None:
    height, width = 333, 500
    boxes = np.array([[10.0, 20.0, 110.0, 70.0], [300.5, 100.0, 499.0, 333.0]], dtype=np.float32)
    _, expected, _, _ = eval_transforms(160)(np.zeros((height, width, 3), np.uint8), boxes, np.array([1, 2]))
    got = letterboxed_boxes([boxes, np.zeros((0, 4))], [(height, width), (50, 60)], 160)
    torch.testing.assert_close(got, torch.as_tensor(expected, dtype=torch.float32), atol=1e-3, rtol=0)


def _model(name: str):
    cfg = load_config([f"config={name}"])
    return cfg, build_model(cfg, num_classes=5)


def test_each_family_exposes_its_priors() -> None:
    cfg, rpn_model = _model("faster_rcnn_mobilenet_v1_shapes")
    priors = model_priors(rpn_model, 160)
    generator = rpn_model.proposal_generator
    # The stride-8 map of a 160 px input: 20 x 20 cells x 9 anchors, exactly the RPN's own.
    torch.testing.assert_close(priors.boxes, generator.anchor_generator(20, 20))
    assert (priors.kind, priors.iou_threshold, priors.matcher_threshold) == ("rpn", 0.5, 0.7)
    _, yolo3 = _model("yolov3_resnet18_shapes")
    priors = model_priors(yolo3, 160)
    assert priors.kind == "yolov3" and priors.shapes.shape == (9, 2) and priors.iou_threshold == 0.5
    torch.testing.assert_close(priors.shapes[0], torch.tensor([13.6, 13.5]))
    _, yolo1 = _model("yolov1_mobilenet_v1_shapes")
    assert "YOLOv1 has no priors" in model_priors(yolo1, 160)
    _, fast = _model("fast_rcnn_mobilenet_v1_shapes")
    assert "selective search" in model_priors(fast, 160)


@pytest.mark.parametrize("name", ["ssd_mobilenet_v1_shapes"])
def test_ssd_priors_are_the_heads_default_boxes(name: str) -> None:
    _, model = _model(name)
    priors = model_priors(model, 160)
    model.eval()
    with torch.no_grad():
        batch, sizes = model.preprocess([torch.zeros(3, 160, 160)])
        expected = model.head.priors(model.features(batch), sizes)
    torch.testing.assert_close(priors.boxes, expected)
    assert priors.kind == "ssd" and priors.iou_threshold == 0.5


def test_shape_recall_separates_a_coarse_grid_from_ill_fitting_shapes() -> None:
    # One 8x8 prior shape on a stride-16 grid (cell centres 8, 24, ...); an 8x8 box centred at (12, 12)
    # overlaps the nearest prior by 4x4, IoU 16 / 112. Centred, the shape fits it exactly.
    centres = torch.arange(8.0, 64.0, 16.0)
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    placed = torch.stack([cx - 4, cy - 4, cx + 4, cy + 4], dim=-1).reshape(-1, 4)
    priors = Priors("rpn", 0.5, "placed", boxes=placed)
    report = prior_coverage(torch.tensor([[8.0, 8.0, 16.0, 16.0]]), priors)
    assert report["recall"] == 0.0 and report["shape_recall"] == 1.0
    assert report["mean_best_iou"] == round(16 / 112, 4)
