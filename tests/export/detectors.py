"""Small detectors of every family for the export tests: MobileNet v1 at a quarter width, 128 px."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

from detkit.engine.build import build_model, load_config

FAMILIES = ("ssd", "yolov1", "yolov2", "yolov3", "yolov4", "retinanet", "faster_rcnn", "fast_rcnn", "rcnn")
INPUT_SIZE = 128
NUM_CLASSES = 5
# R-CNN runs the backbone on every proposal: smaller crops keep the test in seconds. RoI pooling
# (the configs' default) gives two proposals that fall into the same cells identical scores, a
# tie that NMS may break either way in another runtime; RoI align never ties, so the strict
# comparisons use it and test_roi_pool_ties covers RoI pooling.
OVERRIDES = {
    "rcnn": ["model.crop_size=64", "model.context_padding=4"],
    "faster_rcnn": ["model.roi_head.pooler=roi_align"],
    "fast_rcnn": ["model.roi_head.pooler=roi_align"],
}

# Families without a MobileNet shapes experiment: their shapes experiment with the MobileNet in.
EXPERIMENTS = {
    "faster_rcnn_fpn": [
        "config=faster_rcnn_fpn_resnet18_shapes", "model/backbone=mobilenet_v1", "model.backbone.pretrained=false",
        "model.backbone.out_features=[c3,c4,c5]",
    ],
    "localizer": ["config=localizer_mobilenet_v1_shapes_single"],
}  # fmt: skip

needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="onnx and onnxruntime are not installed (pip install 'detkit[export]')",
)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """He-initialised weights everywhere. The heads' own initialisation (predictors with std 0.01)
    gives nearly equal scores, whose order two runtimes may break differently; spread scores make
    the comparison about the graph, not about ties."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


def config(family: str, *overrides: str, defaults: bool = True):
    """The family's shapes experiment on a small MobileNet, with the test overrides unless
    ``defaults`` is False (the experiment's own settings), then ``overrides``."""
    own = OVERRIDES.get(family, []) if defaults else []
    experiment = EXPERIMENTS.get(family, [f"config={family}_mobilenet_v1_shapes"])
    return load_config([*experiment, "model.backbone.width_mult=0.25", *own, *overrides])


def small_detector(family: str, *overrides: str, defaults: bool = True) -> nn.Module:
    torch.manual_seed(0)
    model = randomize(build_model(config(family, *overrides, defaults=defaults), num_classes=NUM_CLASSES))
    if family == "faster_rcnn_fpn":
        # He-initialised, the FPN RPN's deltas spread to std 1.6 (up to 7): proposals far from
        # their anchors, where exp() turns float32 rounding into 7e-4 px of box difference between
        # runtimes. A tenth of them (std 0.16, a trained RPN's range) leaves 3e-5 px.
        with torch.no_grad():
            model.proposal_generator.deltas.weight.mul_(0.1)
            model.proposal_generator.deltas.bias.mul_(0.1)
    return model


def save_small_checkpoint(family: str, path, *overrides: str) -> nn.Module:
    """A detkit checkpoint of ``small_detector(family)`` with its config and the shapes' class
    names, as training writes it; returns the model."""
    from detkit.data.synthetic.shapes import SHAPE_CLASSES
    from detkit.engine.build import config_to_yaml
    from detkit.engine.checkpoint import save_checkpoint

    model = small_detector(family, *overrides)
    cfg = config(family, *overrides)
    save_checkpoint(path, model=model, iteration=0, epoch=0, config_yaml=config_to_yaml(cfg), class_names=SHAPE_CLASSES)
    return model


# A small validation split at the 128 px of the other export tests; 96 x 128 images letterbox to
# 128 x 128 unscaled. The checkpoint's config carries it, so evaluation uses it too.
SMALL_DATA = (
    "data.num_train=4", "data.num_val=6", "data.image_size=[96,128]", "data.input_size=128", "data.batch_size=4",
)  # fmt: skip
