"""Every head of detkit follows its family's contract (detkit.heads.base): the same methods with
the same parameters, so that a detector can call any head of its family."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import yaml
from hydra.utils import get_class
from torch import nn

import detkit.heads
from detkit.engine.config import config_dir
from detkit.heads.base import DenseHead, RoIHead
from detkit.heads.fast_rcnn import FastRCNNHead
from detkit.heads.fpn_roi import FPNRoIHead
from detkit.heads.localization import LocalizationHead
from detkit.heads.rcnn import RCNNHead
from detkit.heads.retina import RetinaNetHead
from detkit.heads.rfcn import RFCNHead
from detkit.heads.spp import SPPHead
from detkit.heads.ssd import SSDHead
from detkit.heads.yolov1 import YOLOv1Head
from detkit.heads.yolov2 import YOLOv2Head
from detkit.heads.yolov3 import YOLOv3Head

FAMILIES = {
    DenseHead: (SSDHead, YOLOv1Head, YOLOv2Head, YOLOv3Head, LocalizationHead, RetinaNetHead),
    RoIHead: (FastRCNNHead, RCNNHead, RFCNHead, SPPHead, FPNRoIHead),
}
# Which family each detector calls, and under which config key its head is.
DETECTOR_HEADS = {
    "detkit.detectors.single_stage.SingleStageDetector": ("head", DenseHead),
    "detkit.detectors.two_stage.TwoStageDetector": ("roi_head", RoIHead),
    "detkit.detectors.two_stage_fpn.FPNTwoStageDetector": ("roi_head", RoIHead),
    "detkit.detectors.rcnn.RCNN": ("head", RoIHead),
    "detkit.detectors.spp_net.SPPNet": ("head", RoIHead),
}


def _parameters(function) -> list[tuple[str, inspect._ParameterKind]]:
    return [(p.name, p.kind) for p in inspect.signature(function).parameters.values() if p.name != "self"]


@pytest.mark.parametrize(
    "head, family", [(head, family) for family, heads in FAMILIES.items() for head in heads], ids=lambda x: x.__name__
)
def test_head_has_its_familys_signatures(head, family):
    methods = ("loss", "predict", "dense_predictions" if family is DenseHead else "predict_padded")
    for method in methods:
        expected, got = getattr(family, method), getattr(head, method)
        assert _parameters(got) == _parameters(expected), f"{head.__name__}.{method}"
        returns = inspect.signature(got).return_annotation
        assert returns == inspect.signature(expected).return_annotation, f"{head.__name__}.{method} returns {returns}"


def test_every_head_module_class_with_loss_and_predict_is_in_a_family():
    found = set()
    for module_info in pkgutil.iter_modules(detkit.heads.__path__):
        module = importlib.import_module(f"detkit.heads.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            is_head = (
                issubclass(cls, nn.Module)
                and callable(getattr(cls, "loss", None))
                and callable(getattr(cls, "predict", None))
            )
            if cls.__module__ == module.__name__ and is_head:
                found.add(cls)
    in_families = {head for heads in FAMILIES.values() for head in heads}
    assert found == in_families


def test_every_configured_head_belongs_to_the_family_its_detector_calls():
    checked = 0
    for path in sorted((config_dir() / "model").glob("*.yaml")):
        model = yaml.safe_load(path.read_text())
        key, family = DETECTOR_HEADS[model["_target_"]]
        head = get_class(model[key]["_target_"])
        assert head in FAMILIES[family], f"{path.name}: {head.__name__} is not a {family.__name__}"
        checked += 1
    assert checked >= 7  # fast_rcnn, faster_rcnn, rcnn, ssd, ssdlite, yolov1, yolov3
