"""Checkpoints written before classes moved still build and load: their stored config names old
import paths, which detkit.engine.moved maps to the new ones. Two generations of old configs: before
the data side of proposals moved to detkit/data/proposals, and before the packages were layered
(data formats, synthetic data and transforms in sub-packages of detkit/data)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class

from detkit.data.proposals.with_proposals import WithProposals
from detkit.engine.build import build_model, config_from_yaml, load_config_with_overrides
from detkit.engine.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from detkit.engine.moved import moved_target

FIXTURES = Path(__file__).parent / "fixtures"
BEFORE = FIXTURES / "before_proposals_move"
BEFORE_LAYERING = FIXTURES / "before_layering"
LAYERING_EXPERIMENTS = [
    "rfcn_mobilenet_v1_shapes_quick",  # the default experiment of the time, on the built-in shapes data
    "yolov3_mobilenet_v1_shapes_coco",  # data=coco
    "ssd_mobilenet_v1_shapes_voc",  # data=voc
]
EXPERIMENTS = [
    "fast_rcnn_mobilenet_v1_shapes",  # WithProposals moved to detkit.data.proposals
    "faster_rcnn_mobilenet_v1_shapes",  # the RPN's conv now comes from detkit.layers
    "ssd_mobilenet_v1_shapes",  # SSD extras and the MobileNet stem now come from detkit.layers
    "yolov3_mobilenet_v1_shapes",  # ConvBNLeaky moved from the YOLOv3 neck to detkit.layers
]


def _old_state_dict_shapes(name: str, folder: Path = BEFORE) -> dict[str, list[int]]:
    entries = {}
    for line in (folder / f"{name}.keys").read_text().splitlines():
        key, shape = line.split(" ", 1)
        entries[key] = ast.literal_eval(shape)
    return entries


def test_moved_target_maps_modules_and_names_and_follows_chains():
    assert moved_target("detkit.proposals.with_proposals.WithProposals") == (
        "detkit.data.proposals.with_proposals.WithProposals"
    )
    assert moved_target("detkit.necks.yolov3_fpn.ConvBNLeaky") == "detkit.layers.conv_bn_act.ConvBNLeaky"
    # What stayed is left alone, including names in a module that only lost some of its contents.
    for path in ("detkit.proposals.rpn.RPN", "detkit.necks.yolov3_fpn.YOLOv3FPN", "torch.optim.AdamW"):
        assert moved_target(path) == path
    table = {"a.b": "c.d", "c.d.Thing": "e.Thing", "x": "y"}
    assert moved_target("a.b.Thing", table) == "e.Thing"  # moved twice
    assert moved_target("a.bc.Thing", table) == "a.bc.Thing"  # whole dotted parts only
    with pytest.raises(ValueError, match="circle"):
        moved_target("p.Q", {"p": "r", "r": "p"})


def test_old_config_names_the_moved_wrapper_and_reads_back_with_the_new_path():
    old_yaml = (BEFORE / "fast_rcnn_mobilenet_v1_shapes.yaml").read_text()
    assert "_target_: detkit.proposals.with_proposals.WithProposals" in old_yaml  # the fixture is old
    for cfg in (config_from_yaml(old_yaml), load_config_with_overrides(old_yaml, ["data.batch_size=2"])):
        assert get_class(cfg.data.proposals.wrapper._target_) is WithProposals
        assert cfg.model.proposal_generator._target_ == "detkit.proposals.precomputed.PrecomputedProposals"


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_checkpoint_written_before_the_moves_loads_strictly(tmp_path, name):
    old_yaml = (BEFORE / f"{name}.yaml").read_text()
    old_shapes = _old_state_dict_shapes(name)
    # The model built from the old config has exactly the old tensors: same names, same shapes.
    model = build_model(config_from_yaml(old_yaml), num_classes=5)
    assert {key: list(value.shape) for key, value in model.state_dict().items()} == old_shapes
    # A checkpoint as the old code wrote it (its config text, those tensors) loads strictly into
    # a model built from the config stored in it, every tensor arriving unchanged.
    torch.manual_seed(0)
    for value in model.state_dict().values():
        if value.is_floating_point():
            value.copy_(torch.randn_like(value))
    path = save_checkpoint(tmp_path / "old.pt", model=model, iteration=1, epoch=0, config_yaml=old_yaml,
                           class_names=["circle", "square", "triangle", "star", "cross"])
    state = read_checkpoint(path)
    rebuilt = build_model(config_from_yaml(state["config_yaml"]), num_classes=len(state["class_names"]))
    load_checkpoint(path, model=rebuilt, restore_rng=False)
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key


@pytest.mark.parametrize("name", LAYERING_EXPERIMENTS)
def test_config_written_before_the_layering_names_classes_that_still_resolve(name):
    old_yaml = (BEFORE_LAYERING / f"{name}.yaml").read_text()
    old_targets = {"detkit.data.shapes.ShapesDataset", "detkit.data.coco.CocoDataset", "detkit.data.voc.VocDataset"}
    assert any(f"_target_: {target}" in old_yaml for target in old_targets)  # the fixture is old
    cfg = config_from_yaml(old_yaml)
    for split in ("train", "val"):
        target = cfg.data[split]._target_
        assert target.startswith("detkit.data.formats.") or target.startswith("detkit.data.synthetic."), target
        assert get_class(target).__module__ == target.rsplit(".", 1)[0]
    model = build_model(cfg, num_classes=5)
    assert {key: list(value.shape) for key, value in model.state_dict().items()} == _old_state_dict_shapes(
        name, BEFORE_LAYERING
    )


def test_default_checkpoint_written_before_the_layering_loads_and_predicts(tmp_path):
    """The default experiment's checkpoint as the old code wrote it: ``detkit.load`` builds it
    from its stored config and runs it on an image."""
    import numpy as np

    import detkit

    old_yaml = (BEFORE_LAYERING / "rfcn_mobilenet_v1_shapes_quick.yaml").read_text()
    model = build_model(config_from_yaml(old_yaml), num_classes=5)
    path = save_checkpoint(tmp_path / "old.pt", model=model, iteration=1, epoch=0, config_yaml=old_yaml,
                           class_names=["circle", "square", "triangle", "plus", "ring"])  # fmt: skip
    predictor = detkit.load(path, device="cpu")
    result = predictor(np.zeros((48, 64, 3), np.uint8))
    assert set(result) == {"boxes", "scores", "labels", "names"}
    assert predictor.cfg.data.val._target_ == "detkit.data.synthetic.shapes.ShapesDataset"
