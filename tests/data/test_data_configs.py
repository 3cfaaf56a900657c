"""configs/data/*.yaml compose and instantiate the way engine/build.py uses them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from detkit.data.augment.transforms import eval_transforms, train_transforms
from detkit.data.formats.coco import CocoDataset
from detkit.data.formats.voc import VocDataset
from detkit.data.formats.yolo import YoloDataset
from detkit.data.synthetic.shapes import ShapesDataset
from detkit.data.synthetic.shapes_render import SHAPE_CLASSES

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _data_config(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base=None):
        return compose(overrides=[f"+data={name}", *overrides]).data


SIZE = 96  # the input size is the recipe's (configs/train.yaml, the experiments), not the data's


def _build(data, split: str):
    make = train_transforms(SIZE) if split == "train" else eval_transforms(SIZE)
    return instantiate(data[split], transforms=make)


def test_shapes_config_builds_both_splits_from_one_cache(tmp_path: Path) -> None:
    data = _data_config(
        "shapes", f"data.root={tmp_path}", "data.num_train=5", "data.num_val=3",
        "data.image_size=[48,64]", "data.min_size=8", "data.max_size=32",
    )
    train, val = _build(data, "train"), _build(data, "val")
    assert isinstance(train, ShapesDataset) and len(train) == 5 and len(val) == 3
    assert train.folder == val.folder and train.params.image_size == (48, 64)
    image, target = train[0]
    assert image.shape == (3, SIZE, SIZE)
    assert {"boxes", "labels", "image_id", "scale", "orig_size"} <= set(target)


def test_coco_voc_yolo_configs_require_their_paths_then_build(shapes_layouts) -> None:
    with pytest.raises(MissingMandatoryValue):
        OmegaConf.to_container(_data_config("coco").train, resolve=True, throw_on_missing=True)
    coco = shapes_layouts["coco"]
    data = _data_config(
        "coco",
        f"data.train.ann_file={coco / 'annotations' / 'instances_train.json'}",
        f"data.train.img_dir={coco / 'train' / 'images'}",
        f"data.val.ann_file={coco / 'annotations' / 'instances_val.json'}",
        f"data.val.img_dir={coco / 'val' / 'images'}",
    )
    assert isinstance(_build(data, "train"), CocoDataset) and len(_build(data, "val")) == 6

    classes = "[" + ",".join(SHAPE_CLASSES) + "]"
    data = _data_config("voc", f"data.root={shapes_layouts['voc']}", "data.train.split=train",
                        "data.val.split=val", f"data.class_names={classes}")
    voc_train = _build(data, "train")
    assert isinstance(voc_train, VocDataset) and voc_train.class_names == list(SHAPE_CLASSES) and len(voc_train) == 10

    data = _data_config("yolo", f"data.yaml={shapes_layouts['yolo']}")
    yolo_val = _build(data, "val")
    assert isinstance(yolo_val, YoloDataset) and len(yolo_val) == 6
