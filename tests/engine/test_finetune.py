"""Fine-tuning: exactly the class-dependent tensors are re-initialised when the classes change,
everything else carries over; the backbone can be unfrozen part-way."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from detkit.engine import build
from detkit.engine.checkpoint import save_checkpoint
from detkit.engine.config import load_config
from detkit.engine.finetune import class_dependent_keys, finetune_from
from detkit.engine.hooks import UnfreezeHook

# Hand-listed from each head's code: the layers whose outputs are per class.
EXPECTED = {
    "faster_rcnn_mobilenet_v1_shapes": [
        f"roi_head.predictor.{p}.{t}" for p in ("bbox_pred", "cls_score") for t in ("bias", "weight")
    ],
    "fast_rcnn_mobilenet_v1_shapes": [
        f"roi_head.predictor.{p}.{t}" for p in ("bbox_pred", "cls_score") for t in ("bias", "weight")
    ],
    "rcnn_mobilenet_v1_shapes": [
        f"head.predictor.{p}.{t}" for p in ("bbox_pred", "cls_score") for t in ("bias", "weight")
    ],
    "ssd_mobilenet_v1_shapes": [f"head.classifiers.{i}.{t}" for i in range(6) for t in ("bias", "weight")],
    "yolov1_mobilenet_v1_shapes": ["head.predictor.bias", "head.predictor.weight"],  # boxes and classes share the conv
    "yolov3_mobilenet_v1_shapes": [f"head.predictors.{i}.{t}" for i in range(3) for t in ("bias", "weight")],
    "yolov2_mobilenet_v1_shapes": ["head.predictors.0.bias", "head.predictors.0.weight"],  # one grid
    "yolov4_mobilenet_v1_shapes": [f"head.predictors.{i}.{t}" for i in range(3) for t in ("bias", "weight")],
    "retinanet_mobilenet_v1_shapes": ["head.cls_predictor.bias", "head.cls_predictor.weight"],  # boxes: class-agnostic
    "rfcn_mobilenet_v1_shapes": ["roi_head.class_maps.bias", "roi_head.class_maps.weight"],  # k*k*(C+1) score maps
    "spp_net_mobilenet_v1_shapes": [
        f"head.predictor.{p}.{t}" for p in ("bbox_pred", "cls_score") for t in ("bias", "weight")
    ],
    "localizer_lenet_shapes_single": ["head.cls_score.bias", "head.cls_score.weight"],  # one box per image
}
PRETRAIN = ["circle", "square", "triangle", "plus", "ring"]
OTHER = ["star", "cross", "arrow", "moon", "heart"]  # as many classes, other meanings


@pytest.mark.parametrize("experiment", sorted(EXPECTED))
def test_class_dependent_keys_of_each_family(experiment: str) -> None:
    assert class_dependent_keys(load_config([f"config={experiment}"]), 5) == sorted(EXPECTED[experiment])


def _checkpoint(tmp_path, cfg, names):
    torch.manual_seed(1)
    model = build.build_model(cfg, num_classes=len(names))
    path = save_checkpoint(tmp_path / "pretrained.pt", model=model, iteration=1, epoch=1, class_names=names)
    return path, model.state_dict()


@pytest.mark.parametrize(
    "target", [OTHER, PRETRAIN, OTHER[:3]], ids=["same-count-other-classes", "same-classes", "fewer-classes"]
)
def test_finetune_reinitialises_exactly_the_class_dependent_tensors(tmp_path, target) -> None:
    cfg = load_config(["config=faster_rcnn_mobilenet_v1_shapes"])
    path, source = _checkpoint(tmp_path, cfg, PRETRAIN)
    torch.manual_seed(2)
    model = build.build_model(cfg, num_classes=len(target))
    initial = {key: value.clone() for key, value in model.state_dict().items()}
    report = finetune_from(path, model, cfg, target, report_path=tmp_path / "report.json")
    dependent = set(EXPECTED["faster_rcnn_mobilenet_v1_shapes"])
    expected_reinit = set() if target == PRETRAIN else dependent
    assert set(report["reinitialized"]) == expected_reinit
    assert json.loads((tmp_path / "report.json").read_text())["reinitialized"] == report["reinitialized"]
    for key, value in model.state_dict().items():
        if key in expected_reinit:
            assert torch.equal(value, initial[key]), key       # kept as the new model initialised it
        else:
            assert torch.equal(value, source[key]), key        # carried over from the checkpoint
    assert report["missing"] == [] and report["unexpected"] == []


def test_unfreeze_hook_trains_the_frozen_stages_from_its_iteration_on() -> None:
    cfg = load_config(["config=yolov1_mobilenet_v1_shapes", "model.backbone.frozen_stages=2"])
    model = build.build_model(cfg, num_classes=5)
    frozen = [p for p in model.backbone.parameters() if not p.requires_grad]
    assert frozen, "frozen_stages=2 froze nothing"
    optimizer = build.build_optimizer(cfg, model, include_frozen=True)
    hook = UnfreezeHook(model.backbone, at_iter=2)
    hook.trainer = SimpleNamespace(iter=0)
    images = torch.rand(2, 3, 96, 96)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([1])}] * 2
    before = [p.detach().clone() for p in frozen]
    for step in range(4):
        hook.trainer.iter = step
        hook.before_step()
        optimizer.zero_grad()
        losses = model(images, targets)
        sum(losses.values()).backward()
        optimizer.step()
        moved = any(not torch.equal(b, p) for b, p in zip(before, frozen, strict=True))
        assert moved == (step >= 2), step   # untouched while frozen (no gradient, no decay), trained after
