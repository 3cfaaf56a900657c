"""Fast R-CNN = the two-stage detector with precomputed proposals: one training step per backbone
(from the shipped experiment configs), negative samples, inference, and the head it shares with
Faster R-CNN."""

from __future__ import annotations

import pytest
import torch

from detkit.backbones import CORE_BACKBONES
from detkit.detectors.two_stage import TwoStageDetector
from detkit.engine.build import build_model, load_config
from detkit.heads.fast_rcnn import FastRCNNHead
from detkit.proposals.precomputed import PrecomputedProposals
from detkit.proposals.rpn import RPN

# Small enough for a CPU test: MobileNet at a quarter width; the others as they are, on 64 px images.
SMALL = {"mobilenet_v1": ["model.backbone.width_mult=0.25"]}


def make_batch(num_images: int = 2, size: int = 64, empty: bool = False, seed: int = 0):
    """Images with one bright square each, its box, and proposals around it (jittered) and elsewhere."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(num_images, 3, size, size, generator=generator) * 0.2
    targets = []
    for index in range(num_images):
        x, y = 8 + 8 * index, 12
        box = torch.tensor([[x, y, x + 24, y + 24]], dtype=torch.float32)
        if not empty:
            images[index, :, y : y + 24, x : x + 24] = 0.9
        jitter = box + torch.randn(8, 4, generator=generator) * 2
        background = torch.tensor([[0, 40, 20, 60], [40, 40, 60, 62], [30, 0, 62, 10]], dtype=torch.float32)
        targets.append({
            "boxes": box[:0] if empty else box,
            "labels": torch.ones(0 if empty else 1, dtype=torch.long),
            "image_id": index,
            "proposals": torch.cat((jitter, background)).clamp(0, size),
        })  # fmt: skip
    return images, targets


def build(name: str) -> TwoStageDetector:
    cfg = load_config([f"config=fast_rcnn_{name}_shapes", *SMALL.get(name, [])])
    return build_model(cfg, num_classes=5)


@pytest.mark.parametrize("name", CORE_BACKBONES)
def test_one_training_step_per_backbone(name: str) -> None:
    torch.manual_seed(0)
    model = build(name).train()
    assert isinstance(model.proposal_generator, PrecomputedProposals)
    images, targets = make_batch()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box"] > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_negative_samples_and_inference() -> None:
    torch.manual_seed(0)
    model = build("mobilenet_v1").train()
    images, targets = make_batch(empty=True)
    losses = model(images, targets)
    assert losses["loss_box"].item() == 0.0
    assert torch.isfinite(losses["loss_cls"]) and losses["loss_cls"] > 0
    model.eval()
    with torch.no_grad():
        detections = model(images, targets)
    assert len(detections) == 2
    for det in detections:
        assert det["boxes"].shape[1] == 4 and det["scores"].shape == det["labels"].shape
        assert (det["boxes"] >= 0).all() and (det["boxes"] <= 64).all()
        assert ((det["labels"] >= 1) & (det["labels"] <= 5)).all()
    with pytest.raises(ValueError, match="proposals"):
        model(images)


def test_fast_and_faster_rcnn_share_the_detector_and_the_roi_head() -> None:
    fast = build("resnet18")
    faster = build_model(load_config(["config=faster_rcnn_resnet18_shapes"]), num_classes=5)
    assert type(fast) is type(faster) is TwoStageDetector
    assert type(fast.roi_head) is type(faster.roi_head) is FastRCNNHead
    assert isinstance(fast.proposal_generator, PrecomputedProposals) and isinstance(
        faster.proposal_generator, RPN
    )
    # The same RoI-head parameters, so a Faster R-CNN head loads into Fast R-CNN and back.
    shapes = {k: v.shape for k, v in fast.roi_head.state_dict().items()}
    assert shapes == {k: v.shape for k, v in faster.roi_head.state_dict().items()}


def test_training_reduces_the_loss() -> None:
    torch.manual_seed(0)
    model = build("mobilenet_v1").train()
    images, targets = make_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    history = []
    for _ in range(15):
        losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert sum(history[-3:]) < 0.4 * sum(history[:3]), history
