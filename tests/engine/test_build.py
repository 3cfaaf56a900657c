"""Every experiment composes and builds; config mistakes are answered with the valid choices."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from detkit.cli import config_choices
from detkit.engine.build import ConfigError, build_model, config_dir, load_config, load_config_with_overrides

DATA_LOCATIONS = (
    "data.root", "data.yaml", "data.train.ann_file", "data.train.img_dir", "data.val.ann_file", "data.val.img_dir"
)  # fmt: skip
EXPERIMENTS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "configs" / "config").glob("*.yaml"))


def test_default_experiment_is_the_quick_rfcn_on_shapes_from_imagenet():
    cfg = load_config([])
    assert cfg.experiment == "rfcn_efficientnet_lite0_shapes_quick"
    assert cfg.model._target_.endswith("TwoStageDetector")
    assert cfg.model.roi_head._target_.endswith("RFCNHead")
    assert cfg.data.name == "shapes"
    # The main job's schedule: 200 iterations of the built-in 1000 images at batch 8.
    assert (cfg.engine.epochs, cfg.engine.min_iters, cfg.data.batch_size) == (1, 200, 8)
    # It starts from the ImageNet weights installed with detkit, on EfficientNet-Lite0's c3.
    assert cfg.model.backbone._target_.endswith("efficientnet_lite0")
    assert cfg.model.backbone.pretrained is True and list(cfg.model.backbone.out_features) == ["c3"]
    # The quick recipe's lighter head: the RPN's 3 x 3 conv and R-FCN's 1 x 1 reduction at 64 and 128 channels.
    model = build_model(cfg, num_classes=5)
    assert model.proposal_generator.conv[0].out_channels == 64
    assert model.proposal_generator.objectness.in_channels == 64
    assert model.roi_head.reduce[0].out_channels == 128
    assert model.proposal_generator.conv[0].in_channels == 40  # EfficientNet-Lite0's c3


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(experiment):
    cfg = load_config([f"config={experiment}"])
    assert cfg.experiment == experiment
    # Only dataset locations may be left for the user to fill in (VOC/COCO/YOLO recipes).
    for key in DATA_LOCATIONS:
        parent, leaf = key.rsplit(".", 1)
        node = OmegaConf.select(cfg, parent)
        if node is not None and leaf in node.keys() and OmegaConf.is_missing(node, leaf):
            OmegaConf.update(cfg, key, "/somewhere")
    OmegaConf.to_container(cfg, resolve=True)  # every other value is set and every interpolation resolves
    assert cfg.model._target_ and cfg.data.train._target_


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if e.endswith("_shapes")])
def test_every_shapes_experiment_builds_its_model(experiment):
    cfg = load_config([f"config={experiment}"])
    model = build_model(cfg, num_classes=5)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_unknown_experiment_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        load_config(["config=faster_rcnn_mobilenet_v1_shapez"])
    assert "faster_rcnn_mobilenet_v1_shapes" in str(info.value)


def test_unknown_key_suggests_the_closest_valid_key():
    with pytest.raises(ConfigError) as info:
        load_config(["engine.epoch=3"])
    message = str(info.value)
    assert "engine.epoch" in message and "engine.epochs" in message


@pytest.mark.parametrize("backbone", ["resnet18", "vgg16", "mobilenet_v1"])
def test_default_experiment_builds_with_any_backbone(backbone):
    # The default experiment starts from ImageNet; another trunk from random weights needs the
    # override, and without it says which weights file it lacks (mobilenet_v1 has none in torchvision).
    cfg = load_config([f"model/backbone={backbone}", "model.backbone.pretrained=false"])
    model = build_model(cfg, num_classes=5)
    assert type(model.backbone).__module__.split(".")[-1] in backbone
    if backbone == "mobilenet_v1":
        with pytest.raises(Exception, match="mobilenet_v1.pth"):
            build_model(load_config([f"model/backbone={backbone}"]), num_classes=5)


def test_group_override_switches_backbone():
    cfg = load_config(["model/backbone=mobilenet_v1", "engine.epochs=2"])
    assert cfg.model.backbone._target_.endswith("mobilenet_v1")
    assert cfg.engine.epochs == 2
    assert cfg.model.backbone.out_features == ["c3"]  # the experiment's choice survives the swap


def test_overrides_on_a_stored_config():
    stored = OmegaConf.to_yaml(load_config([]))
    cfg = load_config_with_overrides(stored, ["data.batch_size=3", "engine.device=cpu"])
    assert cfg.data.batch_size == 3 and cfg.engine.device == "cpu"
    with pytest.raises(ConfigError, match="data.batch_size"):
        load_config_with_overrides(stored, ["data.batch_sise=3"])
    with pytest.raises(ConfigError, match="shapes"):
        load_config_with_overrides(stored, ["data=nope"])


def test_config_choices_lists_groups():
    choices = config_choices()
    assert {"data", "model", "model/backbone", "config", "optimizer", "scheduler", "engine"} <= set(choices)
    assert {"resnet18", "vgg16", "mobilenet_v1"} <= set(choices["model/backbone"])
    assert config_dir().is_dir()


def test_stored_config_takes_another_data_group_and_its_mandatory_paths():
    """``detkit eval checkpoint=… data=coco data.val.ann_file=…``: the swapped-in group's ``???``
    paths are keys that can be set, not unknown ones."""
    from detkit.engine.config import config_to_yaml

    stored = config_to_yaml(load_config(["config=rfcn_mobilenet_v1_shapes_quick"]))
    cfg = load_config_with_overrides(stored, ["data=coco", "data.val.ann_file=val.json", "data.val.img_dir=images"])
    assert cfg.data.val.ann_file == "val.json" and cfg.data.val.img_dir == "images"
    with pytest.raises(ConfigError, match="unknown config key 'data.val.ann_fle'"):
        load_config_with_overrides(stored, ["data=coco", "data.val.ann_fle=val.json"])
