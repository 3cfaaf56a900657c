"""R-FCN = the two-stage detector with the RPN and the position-sensitive head: one training step
per backbone (from the shipped experiment configs), negative samples, inference, ps_roi_pool."""

from __future__ import annotations

import pytest
import torch

from detkit.backbones import CORE_BACKBONES
from detkit.detectors.two_stage import TwoStageDetector
from detkit.engine.build import build_model, load_config
from detkit.heads.rfcn import RFCNHead
from detkit.losses import LOSS_KEYS
from detkit.proposals.rpn import RPN

# Small enough for a CPU test: MobileNet at a quarter width; the others as they are, on 64 px images.
SMALL = {"mobilenet_v1": ["model.backbone.width_mult=0.25"]}


def build(name: str, *overrides: str) -> TwoStageDetector:
    cfg = load_config([f"config=rfcn_{name}_shapes", *SMALL.get(name, []), *overrides])
    torch.manual_seed(0)
    return build_model(cfg, num_classes=5)


def targets(empty: bool = False, num_images: int = 2):
    boxes = torch.zeros(0, 4) if empty else torch.tensor([[4.0, 6.0, 30.0, 40.0], [30.0, 20.0, 60.0, 50.0]])
    labels = torch.ones(boxes.shape[0], dtype=torch.long)
    return [{"boxes": boxes, "labels": labels, "image_id": i} for i in range(num_images)]


@pytest.mark.parametrize("name", CORE_BACKBONES)
def test_one_training_step_per_backbone(name: str) -> None:
    model = build(name).train()
    assert isinstance(model.proposal_generator, RPN) and isinstance(model.roi_head, RFCNHead)
    losses = model(torch.rand(2, 3, 64, 64), targets())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box"} and set(losses) <= set(LOSS_KEYS)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box"] > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("ohem", [True, False])
def test_images_without_objects_give_zero_box_losses(ohem: bool) -> None:
    model = build("mobilenet_v1", f"model.roi_head.ohem={ohem}").train()
    losses = model(torch.rand(2, 3, 64, 64), targets(empty=True))
    assert losses["loss_box"].item() == 0.0 and losses["loss_rpn_box"].item() == 0.0
    assert losses["loss_cls"] > 0 and torch.isfinite(losses["loss_cls"])
    sum(losses.values()).backward()


@pytest.mark.parametrize("pooler", ["ps_roi_align", "ps_roi_pool"])
def test_inference_output_format(pooler: str) -> None:
    model = build("mobilenet_v1", f"model.roi_head.pooler={pooler}").eval()
    images = [torch.rand(3, 64, 80), torch.rand(3, 48, 64)]
    with torch.no_grad():
        detections = model(images)
    assert len(detections) == 2
    for det, image in zip(detections, images, strict=True):
        assert det["boxes"].shape[1] == 4 and det["boxes"].shape[0] == det["scores"].shape[0] == det["labels"].shape[0]
        assert ((det["labels"] >= 1) & (det["labels"] <= 5)).all()
        assert (det["boxes"][:, 2] <= image.shape[2] + 1e-4).all() and (
            det["boxes"][:, 3] <= image.shape[1] + 1e-4
        ).all()


def test_head_has_nothing_per_roi_but_pooling():
    # Every learned layer of the head is a convolution over the whole map (no fully connected layer).
    head = build("resnet18").roi_head
    layers = [m for m in head.modules() if len(list(m.parameters(recurse=False)))]
    assert layers and all(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) for m in layers)
    k, classes = head.grid_size, head.num_classes
    assert head.class_maps.out_channels == k * k * (classes + 1) and head.box_maps.out_channels == k * k * 4


def test_training_reduces_the_loss() -> None:
    model = build("mobilenet_v1").train()
    images = torch.rand(2, 3, 64, 64) * 0.2
    images[:, :, 6:40, 4:30] = 0.9
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(12):
        total = sum(model(images, targets()).values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    # OHEM keeps learning from the hardest RoIs, so the mean loss falls more slowly than with sampling.
    assert sum(history[-3:]) < 0.75 * sum(history[:3]), history
