"""configs/model/backbone/*.yaml agree with the registry and with the factories' defaults."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_method, instantiate

from detkit.backbones import BACKBONES

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"


def _backbone_config(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose(overrides=[f"+model/backbone={name}", *overrides]).model.backbone


def test_every_config_names_a_registered_backbone_and_back() -> None:
    files = {p.stem for p in (CONFIG_DIR / "model" / "backbone").glob("*.yaml")}
    # Every registered backbone has a config of its own name; variants (mobilenet_v1_050) may add more.
    assert set(BACKBONES.list()) <= files
    for stem in files:
        assert get_method(_backbone_config(stem)._target_) in {BACKBONES.get(n) for n in BACKBONES.list()}


@pytest.mark.parametrize("name", BACKBONES.list())
def test_config_targets_the_factory_with_its_defaults(name: str) -> None:
    config = _backbone_config(name)
    factory = get_method(config._target_)
    assert factory is BACKBONES.get(name)
    defaults = {
        key: list(p.default) if isinstance(p.default, tuple) else p.default
        for key, p in inspect.signature(factory).parameters.items()
    }
    values = {key: value for key, value in config.items() if key != "_target_"}
    assert {key: (list(v) if key == "out_features" else v) for key, v in values.items()} == defaults


@pytest.mark.parametrize("name", BACKBONES.list())
def test_config_instantiates_with_command_line_overrides(name: str) -> None:
    model = instantiate(_backbone_config(name, "model.backbone.out_features=[c3]"))
    assert [f.name for f in model.feature_info] == ["c3"]


def test_mobilenet_width_override_reaches_the_model() -> None:
    model = instantiate(_backbone_config("mobilenet_v1", "model.backbone.width_mult=0.5"))
    assert [f.channels for f in model.feature_info] == [256]
