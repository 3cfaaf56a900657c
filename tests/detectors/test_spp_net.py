"""SPP-net: one training step per backbone (from the shipped experiment configs), negative samples,
inference, the conv layers frozen by finetune_fc_only, and the SVM stage's features."""

from __future__ import annotations

import pytest
import torch

from detkit.backbones import CORE_BACKBONES
from detkit.detectors.spp_net import SPPNet
from detkit.engine.build import build_model, build_optimizer, load_config
from detkit.heads.spp import SPPHead
from detkit.ops.spatial_pyramid import pyramid_length, spatial_pyramid_pool
from tests.detectors.test_fast_rcnn import make_batch

SMALL = {"mobilenet_v1": ["model.backbone.width_mult=0.25"]}


def build(name: str, *overrides: str) -> SPPNet:
    cfg = load_config([f"config=spp_net_{name}_shapes", *SMALL.get(name, []), *overrides])
    torch.manual_seed(0)
    return build_model(cfg, num_classes=5)


@pytest.mark.parametrize("name", CORE_BACKBONES)
def test_one_training_step_per_backbone(name: str) -> None:
    model = build(name).train()
    assert isinstance(model.head, SPPHead) and model.head.levels == (6, 3, 2, 1)
    images, targets = make_batch()
    losses = model(images, targets)
    assert set(losses) == {"loss_cls", "loss_box"}
    assert all(torch.isfinite(v) for v in losses.values()) and losses["loss_box"] > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


def test_negative_samples_and_inference() -> None:
    model = build("mobilenet_v1").train()
    images, targets = make_batch(empty=True)
    losses = model(images, targets)
    assert losses["loss_box"].item() == 0.0 and losses["loss_cls"] > 0
    model.eval()
    with torch.no_grad():
        detections = model(images, targets)
    assert len(detections) == 2
    for det in detections:
        assert det["boxes"].shape[1] == 4 and det["scores"].shape == det["labels"].shape
        assert (det["boxes"] >= 0).all() and (det["boxes"] <= 64).all()
    with pytest.raises(ValueError, match="proposals"):
        model(images)


def test_fc6_reads_the_concatenated_pyramid() -> None:
    model = build("resnet18").eval()
    channels = model.backbone.feature_info[-1].channels
    assert model.head.hidden.fc6.in_features == pyramid_length(channels, (6, 3, 2, 1)) == channels * 50
    images, targets = make_batch()
    batch, _ = model.preprocess(images)
    rois = torch.cat((torch.zeros(3, 1), targets[0]["proposals"][:3]), dim=1)
    features = model.features(batch)
    pooled = spatial_pyramid_pool(features, rois, levels=(6, 3, 2, 1), spatial_scale=1 / 8)
    assert torch.allclose(model.head.fc_features(features, rois), model.head.hidden(pooled))


def test_finetune_fc_only_trains_only_the_layers_after_the_pyramid() -> None:
    cfg = load_config(
        ["config=spp_net_mobilenet_v1_shapes", "model.backbone.width_mult=0.25", "model.finetune_fc_only=true"]
    )
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=5).train()
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head"}
    optimized = {id(p) for group in build_optimizer(cfg, model).param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.head.parameters()}
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    images, targets = make_batch()
    model(images, targets)  # a train-mode forward: frozen BatchNorm statistics must not move
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def test_classifier_features_are_fc7_of_proposals_and_ground_truth() -> None:
    model = build("mobilenet_v1").eval()
    images, targets = make_batch()
    per_image = model.classifier_features(images, targets)
    assert len(per_image) == 2
    proposals, proposal_features, gt_features = per_image[0]
    assert proposal_features.shape == (proposals.shape[0], 256) and gt_features.shape == (1, 256)
    batch, _ = model.preprocess(images)
    rois = torch.cat((torch.zeros(1, 1), targets[0]["boxes"]), dim=1)
    assert torch.allclose(gt_features, model.head.fc_features(model.features(batch), rois), atol=1e-5)


def test_a_neck_map_feeds_the_pyramid_and_learns_with_the_fc_layers_only() -> None:
    neck = [
        "model.feature_name=p3", "model.backbone.out_features=[c3,c4,c5]", "+model.neck._target_=detkit.necks.fpn.FPN",
        "+model.neck._partial_=true", "+model.neck.out_channels=16", "+model.neck.extra_levels=0",
        "+model.neck.outputs=[p3]",
    ]  # fmt: skip
    model = build("mobilenet_v1", *neck, "model.finetune_fc_only=true").train()
    assert model.head.hidden.fc6.in_features == pyramid_length(16, model.head.levels)
    images, targets = make_batch()
    assert model.features(images).shape[1] == 16
    sum(model(images, targets).values()).backward()
    # The backbone stays as it is (the paper's fine-tuning); the neck, after it, learns with the head.
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.neck.parameters())
