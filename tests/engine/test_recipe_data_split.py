"""The recipe/data split: a data config says where the data is and what it holds; the
experiment keeps what its model was tuned for, whatever ``data=`` points at."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from detkit.engine.config import config_dir, load_config
from detkit.jobs.train_and_evaluate import schedule_length

EXPERIMENTS = sorted(path.stem for path in (config_dir() / "config").glob("*.yaml"))
DATA_PATHS = {
    "coco": [
        "data.train.ann_file=a.json",
        "data.train.img_dir=img",
        "data.val.ann_file=b.json",
        "data.val.img_dir=img",
    ],
    "voc": ["data.root=VOCdevkit"],
    "yolo": ["data.yaml=data.yaml"],
}
RECIPE_KEYS = ("input_size", "auto_input_size", "batch_size", "num_workers", "augment", "mosaic", "mixup", "proposals")


def _recipe(cfg) -> dict:
    data = OmegaConf.to_container(cfg.data, resolve=False)
    recipe = {key: data.get(key) for key in RECIPE_KEYS}
    recipe["model"] = OmegaConf.to_container(cfg.model, resolve=False)
    recipe["engine"] = OmegaConf.to_container(cfg.engine, resolve=False)
    recipe["optimizer"] = OmegaConf.to_container(cfg.optimizer, resolve=False)
    return recipe


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_pointing_an_experiment_at_other_data_keeps_its_recipe(experiment: str) -> None:
    # One other data config per experiment (they all hold the same keys: the test below), every
    # one for the default experiment.
    own = _recipe(load_config([f"config={experiment}"]))
    others = DATA_PATHS if experiment == "rfcn_efficientnet_lite0_shapes_quick" else {"coco": DATA_PATHS["coco"]}
    for data, paths in others.items():
        assert _recipe(load_config([f"config={experiment}", f"data={data}", *paths])) == own, (experiment, data)


def test_data_configs_hold_no_recipe_keys() -> None:
    for path in sorted((config_dir() / "data").glob("*.yaml")):
        keys = set(OmegaConf.load(path))
        assert not keys & set(RECIPE_KEYS), (path.name, keys & set(RECIPE_KEYS))


def test_a_user_override_still_wins() -> None:
    cfg = load_config(
        ["data=yolo", "data.yaml=d.yaml", "data.input_size=416", "data.num_workers=3", "engine.min_iters=0"]
    )
    assert (cfg.data.input_size, cfg.data.num_workers, cfg.engine.min_iters) == (416, 3, 0)


def test_schedule_is_epochs_with_an_iteration_floor() -> None:
    engine = OmegaConf.create({"epochs": 12, "min_iters": 1500, "max_iters": None})
    assert schedule_length(engine, iters_per_epoch=125) == 1500   # the built-in 1000 images at batch 8
    assert schedule_length(engine, iters_per_epoch=50) == 1500    # 400 images: 30 epochs, not 12
    assert schedule_length(engine, iters_per_epoch=1000) == 12000  # a large set: the epochs decide
    engine.max_iters = 40
    assert schedule_length(engine, iters_per_epoch=50) == 40       # an explicit cap wins
