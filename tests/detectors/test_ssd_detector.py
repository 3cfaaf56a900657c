"""SSD end to end, built from the experiment configs: one training step per backbone at a tiny
input, inference, images without objects, and SSD300's 8732 default boxes."""

import pytest
import torch

from detkit.engine.build import build_model, load_config

SHAPES_EXPERIMENTS = ["ssd_vgg16_shapes", "ssd_resnet18_shapes", "ssd_mobilenet_v1_shapes"]
NUM_CLASSES = 5


def _model(overrides: list[str]):
    torch.manual_seed(0)
    return build_model(load_config(overrides), NUM_CLASSES)


def _batch(size: int):
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    targets = [
        {
            "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [20.0, 20.0, 60.0, 50.0]]),
            "labels": torch.tensor([1, 5]),
            "image_id": 0,
        },
        {"boxes": torch.tensor([[10.0, 10.0, 22.0, 20.0]]), "labels": torch.tensor([3]), "image_id": 1},
    ]
    return images, targets


@pytest.mark.parametrize("experiment", SHAPES_EXPERIMENTS)
def test_one_training_step_per_backbone_then_inference(experiment):
    model = _model([f"config={experiment}"])
    images, targets = _batch(64)
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    sum(losses.values()).backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        detections = model([images[0], images[1, :, :48, :56]])
    assert len(detections) == 2
    for det, (height, width) in zip(detections, [(64, 64), (48, 56)], strict=True):
        assert det["boxes"].shape[1] == 4 and det["scores"].shape == det["labels"].shape
        assert ((det["labels"] >= 1) & (det["labels"] <= NUM_CLASSES)).all()
        assert (det["boxes"][:, 2] <= width).all() and (det["boxes"][:, 3] <= height).all()


def test_images_without_objects_train_with_zero_box_loss():
    model = _model(["config=ssd_resnet18_shapes"])
    images, _ = _batch(64)
    empty = [
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": i}
        for i in range(2)
    ]
    model.train()
    losses = model(images, empty)
    assert losses["loss_box"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"] > 0
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_ssd300_vgg16_config_has_8732_default_boxes():
    model = _model(["config=ssd300_vgg16_voc0712", "model.backbone.pretrained=false"])
    # conv4_3 and conv5_3 of a 300x300 image; the trunk itself is too slow to run in a unit test.
    features = {"c3": torch.zeros(1, 512, 38, 38), "c4": torch.zeros(1, 512, 19, 19)}
    with torch.no_grad():
        sources = model.neck(features)
    assert [tuple(s.shape[-2:]) for s in sources.values()] == [
        (38, 38),
        (19, 19),
        (10, 10),
        (5, 5),
        (3, 3),
        (1, 1),
    ]
    priors = model.head.priors(sources, torch.tensor([[300, 300]]))
    assert priors.shape == (8732, 4)
    assert model.head.default_boxes.num_boxes_per_location == [4, 6, 6, 6, 4, 4]
