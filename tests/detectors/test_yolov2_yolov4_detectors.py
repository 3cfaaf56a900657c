"""YOLOv2 and YOLOv4 as configured in configs/config/: one training step per backbone at tiny
inputs (with multi-scale training for YOLOv2), negative samples, and eval-mode output."""

import pytest
import torch

from detkit.detectors.multiscale import MultiScaleTraining
from detkit.engine.build import build_model, load_config
from detkit.heads.yolov2 import YOLOv2Head
from detkit.necks.pan import PANNeck
from detkit.necks.passthrough import PassthroughNeck

BACKBONES = ["vgg16", "resnet18", "mobilenet_v1"]
LOSS_KEYS = {"loss_box", "loss_obj", "loss_noobj", "loss_cls"}


def images_and_targets():
    torch.manual_seed(0)
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]  # the second is padded in the batch
    targets = [
        {"boxes": torch.tensor([[4.0, 6, 30, 40], [34, 20, 60, 58]]), "labels": torch.tensor([1, 5]), "image_id": 0},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": 1},
    ]
    return images, targets


def build(detector, backbone, *overrides):
    # Tiny multi-scale sizes keep the step fast; the configs' own are checked below.
    cfg = load_config([f"config={detector}_{backbone}_shapes", *overrides])
    return build_model(cfg, num_classes=5)


def test_configs_hold_the_papers_parts():
    v2 = build("yolov2", "mobilenet_v1")
    assert isinstance(v2.neck, PassthroughNeck) and isinstance(v2.head, YOLOv2Head)
    assert v2.head.anchor_grid.anchors.shape == (1, 5, 2) and v2.head.class_activation == "softmax"
    assert isinstance(v2.multiscale, MultiScaleTraining) and 160 in v2.multiscale.sizes
    v4 = build("yolov4", "mobilenet_v1")
    assert isinstance(v4.neck, PANNeck) and v4.head.box_loss == "ciou" and v4.head.scale_xy > 1
    assert v4.head.extra_positive_threshold is not None and v4.multiscale is None
    assert isinstance(build("yolov4", "mobilenet_v1", "model.neck.csp=true").neck, PANNeck)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("detector", ["yolov2", "yolov4"])
def test_one_training_step_and_prediction(detector, backbone):
    overrides = ["model.multiscale.sizes=[64,96]", "model.multiscale.every=1"] if detector == "yolov2" else []
    model = build(detector, backbone, *overrides)
    images, targets = images_and_targets()
    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSS_KEYS
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert float(losses["loss_box"].detach()) > 0 and float(losses["loss_cls"].detach()) > 0
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    sum(losses.values()).backward()
    head_grads = [p.grad for p in model.head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    optimizer.step()
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for detection, image in zip(detections, images, strict=True):
        assert detection["boxes"].shape[1] == 4 and detection["labels"].dtype == torch.long
        assert len(detection["scores"]) <= model.head.max_detections
        if len(detection["boxes"]):
            assert float(detection["boxes"][:, 2].max()) <= image.shape[2] and float(detection["boxes"][:, 3].max()) <= image.shape[1]
            assert int(detection["labels"].min()) >= 1 and int(detection["labels"].max()) <= 5


@pytest.mark.parametrize("detector", ["yolov2", "yolov4"])
def test_negative_samples_zero_box_losses(detector):
    model = build(detector, "resnet18").train()
    images, _ = images_and_targets()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": i} for i in range(2)]
    losses = model(images, empty)
    for key in ("loss_box", "loss_obj", "loss_cls"):
        assert float(losses[key].detach()) == 0.0
    assert float(losses["loss_noobj"].detach()) > 0
    sum(losses.values()).backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
