"""RetinaNet as configured in configs/config/: one training step per backbone at tiny inputs,
negative samples, eval-mode output, and the paper's configuration of levels and anchors."""

import pytest
import torch

from detkit.engine.build import build_model, load_config
from detkit.heads.retina import RetinaNetHead
from detkit.necks.fpn import FPN

BACKBONES = ["vgg16", "resnet18", "mobilenet_v1"]


def images_and_targets():
    torch.manual_seed(0)
    images = [torch.rand(3, 64, 64), torch.rand(3, 48, 64)]  # the second is padded in the batch
    targets = [
        {"boxes": torch.tensor([[4.0, 6, 30, 40], [34, 20, 60, 58]]), "labels": torch.tensor([1, 5]), "image_id": 0},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": 1},
    ]
    return images, targets


def build(config, *overrides):
    return build_model(load_config([f"config={config}", *overrides]), num_classes=5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_one_training_step_and_prediction(backbone):
    model = build(f"retinanet_{backbone}_shapes", "model.neck.out_channels=32")
    assert isinstance(model.neck, FPN) and isinstance(model.head, RetinaNetHead)
    images, targets = images_and_targets()
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    assert float(losses["loss_box"].detach()) > 0 and float(losses["loss_cls"].detach()) > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    model.eval()
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for detection, image in zip(detections, images, strict=True):
        assert detection["boxes"].shape[1] == 4 and detection["labels"].dtype == torch.long
        assert len(detection["scores"]) <= model.head.max_detections
        if len(detection["boxes"]):
            assert float(detection["boxes"][:, 2].max()) <= image.shape[2]
            assert float(detection["boxes"][:, 3].max()) <= image.shape[1]
            assert 1 <= int(detection["labels"].min()) and int(detection["labels"].max()) <= 5


def test_negative_images_give_zero_box_loss():
    model = build("retinanet_resnet18_shapes", "model.neck.out_channels=32").train()
    images, _ = images_and_targets()
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": i} for i in range(2)]
    losses = model(images, empty)
    assert float(losses["loss_box"].detach()) == 0.0 and float(losses["loss_cls"].detach()) > 0
    sum(losses.values()).backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_the_paper_configuration():
    model = build("retinanet_resnet18_voc07", "data.root=/nowhere", "model.backbone.pretrained=false")
    assert [(i.name, i.stride, i.channels) for i in model.neck.feature_info] == [
        (f"p{k}", 2**k, 256) for k in range(3, 8)
    ]
    head = model.head
    assert head.num_anchors == 9 and len(head.cls_subnet) == 4 * 3
    assert (head.matcher.high, head.matcher.low) == (0.5, 0.4)
    assert (head.focal_alpha, head.focal_gamma) == (0.25, 2.0)
    assert torch.allclose(head.cls_predictor.bias.sigmoid(), torch.tensor(0.01))
    with torch.no_grad():
        anchors = head.anchors(model.features(torch.zeros(1, 3, 128, 128)))
    sides = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    # 16x16 + 8x8 + 4x4 + 2x2 + 1x1 cells, 9 anchors each; areas from 32² to 812.7².
    assert anchors.shape == (9 * (256 + 64 + 16 + 4 + 1), 4)
    assert float(sides.min().sqrt()) == pytest.approx(32.0, rel=1e-4)
    assert float(sides.max().sqrt()) == pytest.approx(512 * 2 ** (2 / 3), rel=1e-4)
