"""R-CNN's per-class SVMs: the fit against a hand-solved case, the paper's negative rule and the
hard-negative cache, and the head scoring with them."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest
import torch

from detkit.engine.build import build_model, load_config
from detkit.heads.class_svms import ClassSVMs, SVMTrainer, fit_linear_svm

_spec = importlib.util.spec_from_file_location(
    "fast_rcnn_tests", Path(__file__).parents[1] / "detectors" / "test_fast_rcnn.py"
)
_fast_rcnn_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fast_rcnn_tests)
make_batch = _fast_rcnn_tests.make_batch


def test_fit_matches_the_hand_solved_one_dimensional_case() -> None:
    # Points at x = +2 (positive) and x = -2 (negative). By symmetry b = 0, and the objective
    # 0.5 w^2 + 2 C (1 - 2w)^2 has its minimum at w = 8C / (1 + 16C).
    x = torch.tensor([[2.0], [-2.0]])
    y = torch.tensor([1.0, -1.0])
    for cost in (0.1, 1000.0):
        weight, bias = fit_linear_svm(x, y, cost=cost)
        assert weight.item() == pytest.approx(8 * cost / (1 + 16 * cost), abs=1e-4)
        assert bias.item() == pytest.approx(0.0, abs=1e-4)


def test_positive_weight_moves_the_boundary_towards_the_negatives() -> None:
    x = torch.tensor([[1.0], [-1.0]])
    y = torch.tensor([1.0, -1.0])
    _, plain = fit_linear_svm(x, y, cost=0.5)
    _, weighted = fit_linear_svm(x, y, cost=0.5, positive_weight=4.0)
    assert plain.item() == pytest.approx(0.0, abs=1e-4)
    assert weighted.item() > 0.1  # a positive error costs more: the boundary x = -b/w moves left


def test_separates_two_clouds_and_warm_start_keeps_the_solution() -> None:
    generator = torch.Generator().manual_seed(0)
    positives = torch.randn(200, 8, generator=generator) + 3.0
    negatives = torch.randn(600, 8, generator=generator) - 3.0
    x, y = torch.cat((positives, negatives)), torch.cat((torch.ones(200), -torch.ones(600)))
    weight, bias = fit_linear_svm(x, y, cost=1.0)
    assert ((x @ weight + bias).sign() == y).all()
    again, again_bias = fit_linear_svm(x, y, cost=1.0, init=(weight, bias))
    torch.testing.assert_close(again, weight, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(again_bias, bias, atol=1e-4, rtol=1e-4)


def test_negatives_follow_the_papers_iou_rule_per_class() -> None:
    trainer = SVMTrainer(2, negative_iou=0.3, warmup_images=10)
    gt_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    proposals = torch.tensor(
        [[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 10.0, 2.0], [20.0, 20.0, 30.0, 30.0]]
    )
    features = torch.arange(4.0)[:, None].expand(4, 3).clone()  # row i is all i
    trainer.add_image(features, proposals, torch.full((1, 3), 9.0), gt_boxes, torch.tensor([1]))
    # Class 1: IoUs 1.0, 0.5, 0.2, 0.0 → only the last two are negatives (< 0.3); class 2 has no
    # box in the image, so every proposal is one of its negatives. The ground truth is the positive.
    assert trainer.negatives[0][:, 0].tolist() == [2.0, 3.0]
    assert trainer.negatives[1][:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert [p[0][:, 0].tolist() for p in trainer.positives if p] == [[9.0]]
    summary = trainer.summary()
    assert summary["positives"] == [1, 0] and summary["negatives_seen"] == 6


def test_mining_keeps_only_hard_negatives_and_scores_the_classes(caplog) -> None:
    generator = torch.Generator().manual_seed(1)
    trainer = SVMTrainer(2, cost=1.0, warmup_images=2, retrain_every=50)
    far = torch.tensor([[50.0, 50.0, 60.0, 60.0]])
    gt_boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    for _ in range(6):
        # Class 1's ground truth around +2 in every dimension; background proposals around -2,
        # a few of them close to the boundary (hard).
        easy = torch.randn(40, 4, generator=generator) * 0.3 - 2.0
        hard = torch.randn(4, 4, generator=generator) * 0.3 + 0.5
        features = torch.cat((easy, hard))
        boxes = far.expand(features.shape[0], 4)
        gt = torch.randn(1, 4, generator=generator) * 0.3 + 2.0
        with caplog.at_level(logging.WARNING):
            trainer.add_image(features, boxes, gt, gt_boxes, torch.tensor([1]))
    svms = trainer.fit()
    assert svms.is_fitted and trainer.summary()["fits"] >= 2
    # Every cached negative of class 1 is inside the margin; the easy ones were dropped.
    cached = trainer.negatives[0] * svms.feature_scale
    assert ((cached @ svms.weight[0] + svms.bias[0]) > -1.0).all()
    assert 0 < cached.shape[0] < 6 * 44
    scores = svms.scores(torch.tensor([[2.0] * 4, [-2.0] * 4]))
    assert scores[0, 0] > 0.5 > scores[1, 0]
    # Class 2 never had a positive: it scores nothing, and the fit said so.
    assert (scores[:, 1] < 1e-3).all() and "no ground-truth box" in caplog.text


def test_the_head_scores_with_fitted_svms_and_falls_back_to_the_softmax_before(caplog) -> None:
    torch.manual_seed(0)
    cfg = load_config(["config=rcnn_resnet18_shapes", "model.crop_size=32", "model.context_padding=4",
                       "model.head.classifier=svm"])
    model = build_model(cfg, num_classes=5).eval()
    images, targets = make_batch()
    with torch.no_grad(), caplog.at_level(logging.WARNING, logger="detkit.heads.class_svms"):
        softmax_detections = model(images, targets)
        model(images, targets)
        # Unfitted SVMs: one warning that names the head, however many batches it scores.
        warnings = [r.getMessage() for r in caplog.records if "not fitted yet" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].startswith("RCNNHead:")
        model.head.classifier = "softmax"
        assert [d["scores"].tolist() for d in model(images, targets)] == [
            d["scores"].tolist() for d in softmax_detections
        ]
        model.head.classifier = "svm"
        # Hand-made SVMs: zero weights, so each class scores sigmoid(its bias) on every proposal.
        svms: ClassSVMs = model.head.svms
        svms.bias.copy_(torch.tensor([2.0, -10.0, -10.0, -10.0, -10.0]))
        svms.fitted.fill_(True)
        detections = model(images, targets)
    for det in detections:
        assert det["labels"].numel() > 0 and (det["labels"] == 1).all()
        torch.testing.assert_close(
            det["scores"], torch.full_like(det["scores"], torch.sigmoid(torch.tensor(2.0)).item())
        )
