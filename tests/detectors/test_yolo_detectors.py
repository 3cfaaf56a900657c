"""YOLOv1, v2, v3 and v4 as configured in configs/config/: one training step per backbone at tiny
inputs (with multi-scale training for YOLOv2, at tiny sizes), negative samples, and eval-mode output."""

import pytest
import torch

from detkit.engine.build import build_model, load_config

BACKBONES = ["vgg16", "resnet18", "mobilenet_v1"]
DETECTORS = ["yolov1", "yolov2", "yolov3", "yolov4"]
# Tiny multi-scale sizes keep YOLOv2's step fast; its configs' own sizes are checked in
# test_yolov2_yolov4_detectors.py.
TINY = {"yolov2": ["model.multiscale.sizes=[64,96]", "model.multiscale.every=1"]}
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
    cfg = load_config([f"config={detector}_{backbone}_shapes", *overrides])
    return build_model(cfg, num_classes=5)


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("detector", DETECTORS)
def test_one_training_step_and_prediction(detector, backbone):
    model = build(detector, backbone, *TINY.get(detector, []))
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
            assert (
                float(detection["boxes"][:, 2].max()) <= image.shape[2]
                and float(detection["boxes"][:, 3].max()) <= image.shape[1]
            )
            assert int(detection["labels"].min()) >= 1 and int(detection["labels"].max()) <= 5


@pytest.mark.parametrize("detector", DETECTORS)
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


def test_yolov1_smooth_l1_ce_variant_from_config():
    model = build("yolov1", "resnet18", "model.head.loss=smooth_l1_ce", "model.head.grid_size=5")
    images, targets = images_and_targets()
    losses = model.train()(images, targets)
    assert set(losses) == LOSS_KEYS and all(torch.isfinite(v) for v in losses.values())
    assert model.head.grid_size == (5, 5) and model.head.loss_kind == "smooth_l1_ce"
