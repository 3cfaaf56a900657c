"""R-CNN: one training step per backbone (from the shipped experiment configs), crops batched
through the backbone (one call per chunk, never per crop), negative samples and inference."""

from __future__ import annotations

import importlib.util
from functools import partial
from pathlib import Path

import pytest
import torch

from detkit.backbones import CORE_BACKBONES, build_backbone
from detkit.detectors.rcnn import RCNN
from detkit.engine.build import build_model, load_config
from detkit.heads.rcnn import RCNNHead

# The batch maker of the Fast R-CNN tests (test modules are not a package here).
_spec = importlib.util.spec_from_file_location(
    "fast_rcnn_tests", Path(__file__).with_name("test_fast_rcnn.py")
)
_fast_rcnn_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fast_rcnn_tests)
make_batch = _fast_rcnn_tests.make_batch

# CPU-test sizes: 32 px crops, 16 RoIs per batch; MobileNet at a quarter width.
SMALL = ["model.crop_size=32", "model.context_padding=4", "model.head.rois_per_batch=16"]
SMALL_BACKBONE = {"mobilenet_v1": ["model.backbone.width_mult=0.25"]}


def build(name: str, *extra: str) -> RCNN:
    cfg = load_config([f"config=rcnn_{name}_shapes", *SMALL, *SMALL_BACKBONE.get(name, []), *extra])
    return build_model(cfg, num_classes=5)


class CountingBackbone(torch.nn.Module):
    """Wraps a backbone and records the batch size of every call."""

    def __init__(self, backbone: torch.nn.Module) -> None:
        super().__init__()
        self.inner = backbone
        self.feature_info = backbone.feature_info
        self.batch_sizes: list[int] = []

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.batch_sizes.append(images.shape[0])
        return self.inner(images)


@pytest.mark.parametrize("name", CORE_BACKBONES)
def test_one_training_step_per_backbone(name: str) -> None:
    torch.manual_seed(0)
    model = build(name).train()
    assert isinstance(model.head, RCNNHead) and model.crop_size == 32
    images, targets = make_batch()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_box"] > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_crops_go_through_the_backbone_as_batches() -> None:
    torch.manual_seed(0)
    model = build("mobilenet_v1", "model.chunk_size=4")
    model.backbone = CountingBackbone(model.backbone)
    images, targets = make_batch()
    model.train()
    model(images, targets)
    # One call for the sampled RoIs of both images: 4 foreground (a quarter of 16) and the 6
    # background proposals there are (the jittered ones all overlap their object by >= 0.5).
    assert model.backbone.batch_sizes == [10]
    model.eval()
    model.backbone.batch_sizes.clear()
    with torch.no_grad():
        chunked = model(images, targets)
    proposals = sum(len(t["proposals"]) for t in targets)  # 2 x 11 at test time: every proposal
    assert model.backbone.batch_sizes == [4] * (proposals // 4) + ([proposals % 4] if proposals % 4 else [])
    model.chunk_size = 1000
    with torch.no_grad():
        whole = model(images, targets)
    for a, b in zip(chunked, whole, strict=True):
        assert torch.allclose(a["boxes"], b["boxes"], atol=1e-4) and torch.allclose(
            a["scores"], b["scores"], atol=1e-5
        )


def test_negative_samples_and_inference() -> None:
    torch.manual_seed(0)
    model = build("resnet18").train()
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
    no_proposals = [dict(t, proposals=torch.zeros(0, 4)) for t in targets]
    with torch.no_grad():
        assert all(d["boxes"].shape == (0, 4) for d in model(images, no_proposals))


def test_training_reduces_the_loss() -> None:
    torch.manual_seed(0)
    model = build("mobilenet_v1").train()
    images, targets = make_batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(20):
        losses = model(images, targets)
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(total.item())
    assert sum(history[-3:]) < 0.4 * sum(history[:3]), history


def test_bad_settings_are_named() -> None:
    backbone = build_backbone("mobilenet_v1", out_features=["c5"], width_mult=0.25)
    head = partial(RCNNHead)
    with pytest.raises(ValueError, match="no output 'c4'"):
        RCNN(backbone=backbone, head=head, num_classes=2, feature_name="c4")
    with pytest.raises(ValueError, match="context_padding"):
        RCNN(backbone=backbone, head=head, num_classes=2, crop_size=32, context_padding=16)
