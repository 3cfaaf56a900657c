"""Hydra config composition: the experiment's config from ``configs/`` and command-line overrides.

Kept apart from ``build`` (config → objects) and free of torch, so that the data-side tools
(``tools/proposals.py``, ``tools/check_dataset.py``) compose a config and read a dataset's records
without paying torch's start-up time.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from detkit.engine.moved import update_moved_targets


class ConfigError(ValueError):
    """A config or command-line mistake, with a message meant for the user (no traceback)."""


def config_dir() -> Path:
    """The folder of Hydra configs, the first of: ``$DETKIT_CONFIG_DIR``; the ``configs/`` folder
    of the checkout this package runs from (an editable install or a plain checkout, so edits
    there take effect at once); the copy of that folder installed inside the package
    (``detkit/configs``, from a wheel)."""
    if "DETKIT_CONFIG_DIR" in os.environ:
        candidates = [Path(os.environ["DETKIT_CONFIG_DIR"])]
    else:
        package = Path(__file__).resolve().parents[1]
        candidates = [package.parent / "configs", package / "configs"]
    for path in candidates:
        if (path / "train.yaml").is_file():
            return path
    raise ConfigError(
        f"no configs found (looked in {', '.join(map(str, candidates))}); reinstall detkit or set DETKIT_CONFIG_DIR"
    )


def load_config(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with command-line style overrides (``key=value``,
    ``group=option``). Mistakes raise :class:`ConfigError` naming the valid choices."""
    overrides = list(overrides)
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        try:
            cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
        except HydraException as error:
            raise ConfigError(_explain(error, overrides, config_name)) from None
    # Keep the name of the chosen experiment, drop Hydra's own settings.
    experiment = cfg.hydra.runtime.choices.get("config") or config_name
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.experiment = experiment
    return cfg


def _explain(error: Exception, overrides: list[str], config_name: str) -> str:
    """Hydra's message, plus the closest valid keys when the mistake is an unknown key."""
    message = str(error).split("\nConfig search path:")[0].strip()
    match = re.search(r"Could not override '([^']+)'", message) or re.search(r"Key '([^']+)' is not in struct", message)
    if not match:
        return message
    bad_key = match.group(1)
    # The valid keys are those of the config the user selected: keep only the group choices
    # (`config=…`, `model/backbone=…`), which carry no dot, and drop the value overrides.
    choices = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0]]
    try:
        base = compose(config_name, overrides=choices)
    except HydraException:
        return message
    keys = _flat_keys(OmegaConf.to_container(base, resolve=False))
    close = difflib.get_close_matches(bad_key, keys, n=5, cutoff=0.6)
    parent = bad_key.rsplit(".", 1)[0] if "." in bad_key else ""
    siblings = sorted(k for k in keys if parent and k.startswith(parent + ".") and k.count(".") == bad_key.count("."))
    lines = [f"unknown config key '{bad_key}'."]
    if close:
        lines.append(f"Did you mean: {', '.join(close)}?")
    if siblings:
        lines.append(f"Valid keys under '{parent}': {', '.join(siblings)}")
    lines.append("(To add a new key on purpose, prefix it with '+'.)")
    return "\n".join(lines)


def _flat_keys(node, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            full = f"{prefix}.{key}" if prefix else str(key)
            keys.append(full)
            keys.extend(_flat_keys(value, full))
    return keys


def config_to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def config_from_yaml(text: str) -> DictConfig:
    """A stored config (a checkpoint's ``config_yaml``, a run's ``config.yaml``), with the
    ``_target_`` paths of classes that moved since it was written brought up to date
    (``detkit.engine.moved``)."""
    cfg = OmegaConf.create(text)
    update_moved_targets(cfg)
    return cfg


def load_config_with_overrides(base: DictConfig | str, overrides: Sequence[str]) -> DictConfig:
    """A stored (resolved) config, e.g. from a checkpoint, with command-line overrides on top:
    ``key=value`` sets a value; ``group=option`` (``data=voc``) swaps in that group's file."""
    if isinstance(base, str):
        cfg = config_from_yaml(base)
    else:
        cfg = base.copy()
        update_moved_targets(cfg)
    root = config_dir()
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"expected key=value, got {override!r}")
        key, value = override.split("=", 1)
        key = key.lstrip("+")
        group_file = root / key / f"{value}.yaml"
        if (root / key).is_dir():
            if not group_file.is_file():
                options = sorted(p.stem for p in (root / key).glob("*.yaml"))
                raise ConfigError(f"no option {value!r} in group {key!r}; choose one of: {', '.join(options)}")
            with open_dict(cfg):
                OmegaConf.update(cfg, key.replace("/", "."), OmegaConf.load(group_file), merge=False)
            continue
        if not _has_key(cfg, key) and not override.startswith("+"):
            close = difflib.get_close_matches(key, _flat_keys(OmegaConf.to_container(cfg)), n=5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}.{hint}")
        with open_dict(cfg):
            OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, merge=True)
    return cfg


def _has_key(cfg: DictConfig, key: str) -> bool:
    """Whether dotted ``key`` names an entry of ``cfg``, including one whose value is still the
    mandatory ``???`` (a swapped-in data group's paths), which ``OmegaConf.select`` reports as absent."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    return isinstance(parent, DictConfig) and leaf in parent.keys()


def instantiate_dataset(cfg: DictConfig, split: str, *, transforms=None):
    """The ``train`` or ``val`` dataset that ``cfg.data`` describes, as the loader builds it
    (``transforms`` given to it as they are; no proposal wrapper). Bad paths and annotation files
    raise :class:`ConfigError` with the loader's own message."""
    if split not in cfg.data:
        raise ConfigError(f"data config {cfg.data.get('name', '?')!r} has no split {split!r}")
    try:
        return instantiate(cfg.data[split], transforms=transforms)
    except Exception as error:  # instantiate wraps the dataset's own, clear, error: show that one
        cause = error.__cause__ or error
        if isinstance(cause, (FileNotFoundError, ValueError, KeyError)):
            raise ConfigError(f"cannot build the {split} dataset: {cause}") from None
        raise


def split_arguments(argv: Sequence[str], own_keys: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """A tool's command line → ``(own, overrides)``: the tool's own ``key=value`` arguments (keys in
    ``own_keys``) as a dict, and everything else, in order, as config overrides."""
    own: dict[str, str] = {}
    overrides: list[str] = []
    for argument in argv:
        key, equals, value = argument.partition("=")
        if equals and key in own_keys:
            own[key] = value
        else:
            overrides.append(argument)
    return own, overrides
