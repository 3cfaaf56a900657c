"""Faster R-CNN on every registered backbone: one training step, negative samples, inference."""

import functools

import pytest
import torch

from detkit.backbones import CORE_BACKBONES, build_backbone
from detkit.detectors.two_stage import TwoStageDetector
from detkit.heads.fast_rcnn import FastRCNNHead
from detkit.losses import LOSS_KEYS
from detkit.necks.fpn import FPN
from detkit.proposals.rpn import RPN

SMALL_BACKBONE_ARGS = {"mobilenet_v1": {"width_mult": 0.25}}


def make_detector(backbone_name: str, num_classes: int = 3) -> TwoStageDetector:
    torch.manual_seed(0)
    backbone = build_backbone(backbone_name, out_features=["c4"], **SMALL_BACKBONE_ARGS.get(backbone_name, {}))
    return TwoStageDetector(
        backbone=backbone,
        proposal_generator=functools.partial(
            RPN, anchor_sizes=(16, 32, 64), pre_nms_topk_train=200, post_nms_topk_train=100
        ),
        roi_head=functools.partial(FastRCNNHead, representation_size=64, batch_size_per_image=32),
        num_classes=num_classes,
    )


def targets_with_objects(n: int = 2):
    return [
        {
            "boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [30.0, 20.0, 60.0, 50.0]]),
            "labels": torch.tensor([1, 3]),
            "image_id": i,
        }
        for i in range(n)
    ]


def empty_targets(n: int = 2):
    return [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": i} for i in range(n)]


@pytest.mark.parametrize("backbone_name", CORE_BACKBONES)
def test_one_training_step_per_backbone(backbone_name):
    model = make_detector(backbone_name)
    model.train()
    losses = model(torch.rand(2, 3, 64, 64), targets_with_objects())
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_box", "loss_cls", "loss_box"}
    assert set(losses) <= set(LOSS_KEYS)
    assert all(torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_images_without_objects_give_zero_box_losses():
    model = make_detector("resnet18")
    model.train()
    losses = model(torch.rand(2, 3, 64, 64), empty_targets())
    assert losses["loss_rpn_box"].item() == 0.0
    assert losses["loss_box"].item() == 0.0
    assert losses["loss_rpn_cls"].item() > 0 and losses["loss_cls"].item() > 0
    sum(losses.values()).backward()


def test_mixed_batch_of_empty_and_annotated_images():
    model = make_detector("resnet18")
    model.train()
    targets = targets_with_objects(1) + empty_targets(1)
    losses = model(torch.rand(2, 3, 64, 64), targets)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_rpn_box"].item() > 0


def test_inference_output_format_and_list_input():
    model = make_detector("resnet18").eval()
    images = [torch.rand(3, 64, 80), torch.rand(3, 48, 64)]
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2
    for det, image in zip(out, images, strict=True):
        assert det["boxes"].shape[1] == 4 and det["boxes"].shape[0] == det["scores"].shape[0] == det["labels"].shape[0]
        assert (det["labels"] >= 1).all() and (det["labels"] <= 3).all()
        # Boxes are clipped to each image's own size (not the padded batch).
        assert (det["boxes"][:, 2] <= image.shape[2] + 1e-4).all() and (
            det["boxes"][:, 3] <= image.shape[1] + 1e-4
        ).all()
        assert (det["scores"][:-1] >= det["scores"][1:]).all()


def test_degenerate_target_boxes_are_named():
    model = make_detector("resnet18")
    bad = [{"boxes": torch.tensor([[10.0, 10.0, 5.0, 20.0]]), "labels": torch.tensor([1]), "image_id": 42}]
    with pytest.raises(ValueError, match="image_id 42"):
        model(torch.rand(1, 3, 64, 64), bad)


def test_rpn_has_nine_anchors_per_location():
    model = make_detector("resnet18")
    assert model.proposal_generator.anchor_generator.num_anchors_per_location == 9
    assert model.proposal_generator.objectness.out_channels == 9


def test_a_neck_gives_the_one_map_stride_8_with_the_deeper_maps_semantics():
    torch.manual_seed(0)
    backbone = build_backbone("mobilenet_v1", out_features=["c3", "c4", "c5"], width_mult=0.25)
    model = TwoStageDetector(
        backbone=backbone,
        neck=functools.partial(FPN, out_channels=16, extra_levels=0, outputs=["p3"]),
        feature_name="p3",
        proposal_generator=functools.partial(
            RPN, anchor_sizes=(16, 32, 64), pre_nms_topk_train=200, post_nms_topk_train=100
        ),
        roi_head=functools.partial(FastRCNNHead, representation_size=64, batch_size_per_image=32),
        num_classes=3,
    )
    assert model.proposal_generator.conv[0].in_channels == 16
    images = torch.rand(2, 3, 64, 64)
    assert model.features(images).shape == (2, 16, 8, 8)
    model.train()
    losses = model(images, targets_with_objects())
    sum(losses.values()).backward()
    # The neck learns, and c5 (read only through the neck) gets gradient.
    assert all(p.grad is not None for p in model.neck.parameters())
    model.eval()
    with torch.no_grad():
        assert len(model(images)) == 2
    with pytest.raises(ValueError, match="neck has no output 'c3'.*model.feature_name"):
        TwoStageDetector(
            backbone=backbone,
            neck=functools.partial(FPN, out_channels=16, extra_levels=0, outputs=["p3"]),
            feature_name="c3",
            proposal_generator=functools.partial(RPN),
            roi_head=functools.partial(FastRCNNHead),
            num_classes=3,
        )
