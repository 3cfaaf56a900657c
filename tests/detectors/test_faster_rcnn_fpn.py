"""Faster R-CNN with FPN as configured in configs/config/: a training step, negative images, eval
output, and the RPN's anchors over the levels."""

import torch

from detkit.engine.build import build_model, load_config
from detkit.heads.fpn_roi import FPNRoIHead
from detkit.proposals.fpn_rpn import FPNRPN
from tests.detectors.test_retinanet import images_and_targets

LOSS_KEYS = {"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box"}


def build(*overrides):
    return build_model(
        load_config(["config=faster_rcnn_fpn_resnet18_shapes", "model.neck.out_channels=32", *overrides]), num_classes=5
    )


def test_one_training_step_and_prediction():
    model = build()
    assert isinstance(model.proposal_generator, FPNRPN) and isinstance(model.roi_head, FPNRoIHead)
    images, targets = images_and_targets()
    losses = model.train()(images, targets)
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert float(losses["loss_rpn_box"].detach()) > 0 and float(losses["loss_box"].detach()) > 0
    sum(losses.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for detection, image in zip(detections, images, strict=True):
        assert len(detection["scores"]) <= model.roi_head.max_detections
        if len(detection["boxes"]):
            assert float(detection["boxes"][:, 2].max()) <= image.shape[2] and int(detection["labels"].min()) >= 1


def test_negative_images_give_zero_box_losses():
    model = build().train()
    images, _ = images_and_targets()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": i} for i in range(2)]
    losses = model(images, empty)
    assert float(losses["loss_rpn_box"].detach()) == 0.0 and float(losses["loss_box"].detach()) == 0.0
    assert float(losses["loss_rpn_cls"].detach()) > 0 and float(losses["loss_cls"].detach()) > 0


def test_rpn_anchors_cover_every_level_in_order():
    model = build().eval()
    with torch.no_grad():
        features = model.features(torch.zeros(1, 3, 64, 64))
        _, _, anchors = model.proposal_generator._outputs(features)
    # p3 8x8, p4 4x4, p5 2x2 cells, 2 sizes x 3 ratios each; the first level's anchors come first.
    assert anchors.shape == ((64 + 16 + 4) * 6, 4)
    sides = ((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])).sqrt()
    assert torch.allclose(sides[: 64 * 6].round(decimals=2).unique(), torch.tensor([16.0, 24.0]))
    assert torch.allclose(sides[-4 * 6 :].round(decimals=2).unique(), torch.tensor([64.0, 96.0]))
