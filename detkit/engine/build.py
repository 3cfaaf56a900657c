"""Config → objects. The only module of detkit that knows Hydra: everything else takes plain
keyword arguments, so models, heads and datasets can be used without any config system.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from detkit.data.transforms import eval_transforms, train_transforms
from detkit.engine.hooks.lr import build_lr_scheduler


class ConfigError(ValueError):
    """A config or command-line mistake, with a message meant for the user (no traceback)."""


def config_dir() -> Path:
    """The folder of Hydra configs: ``$DETKIT_CONFIG_DIR`` or the repository's ``configs/``."""
    path = Path(os.environ.get("DETKIT_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))
    if not (path / "train.yaml").is_file():
        raise ConfigError(f"no configs found at {path}; run from a detkit checkout or set DETKIT_CONFIG_DIR")
    return path


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


def build_dataset(cfg: DictConfig, split: str, *, augment: bool | None = None):
    """The ``train`` or ``val`` dataset of ``cfg.data`` with its transforms (augmentation for the
    training split unless ``augment=False``)."""
    if split not in cfg.data:
        raise ConfigError(f"data config {cfg.data.get('name', '?')!r} has no split {split!r}")
    augment = (split == "train") if augment is None else augment
    size = int(cfg.data.input_size)
    transforms = train_transforms(size, **cfg.data.get("augment", {})) if augment else eval_transforms(size)
    try:
        dataset = instantiate(cfg.data[split], transforms=transforms)
    except Exception as error:  # instantiate wraps the dataset's own, clear, error: show that one
        cause = error.__cause__ or error
        if isinstance(cause, (FileNotFoundError, ValueError, KeyError)):
            raise ConfigError(f"cannot build the {split} dataset: {cause}") from None
        raise
    proposals = cfg.data.get("proposals")
    if proposals is not None and proposals.get("enabled", False):
        dataset = instantiate(proposals.wrapper, dataset=dataset, split=split)
    return dataset


def build_model(cfg: DictConfig, num_classes: int) -> nn.Module:
    return instantiate(cfg.model, num_classes=num_classes)


def build_optimizer(cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer, without weight decay on norm layers and biases."""
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            (no_decay if is_norm or name == "bias" else decay).append(param)
    factory = instantiate(cfg.optimizer)
    weight_decay = cfg.optimizer.get("weight_decay", 0.0)
    return factory([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}])


def build_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer, max_iters: int):
    """LambdaLR with warmup; step milestones given as fractions of the run become iterations."""
    sched = cfg.scheduler
    warmup = min(int(sched.warmup_iters), max(max_iters - 1, 0))
    milestones = [int(m * max_iters) if isinstance(m, float) and m < 1 else int(m) for m in sched.get("milestones", [])]
    milestones = sorted({m for m in milestones if 0 < m < max_iters})
    return build_lr_scheduler(
        optimizer,
        sched.kind,
        max_iters=max_iters,
        warmup_iters=warmup,
        warmup_factor=float(sched.warmup_factor),
        milestones=milestones,
        gamma=float(sched.get("gamma", 0.1)),
        final_factor=float(sched.get("final_factor", 0.0)),
    )


def config_to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def config_from_yaml(text: str) -> DictConfig:
    return OmegaConf.create(text)


def load_config_with_overrides(base: DictConfig | str, overrides: Sequence[str]) -> DictConfig:
    """A stored (resolved) config, e.g. from a checkpoint, with command-line overrides on top:
    ``key=value`` sets a value; ``group=option`` (``data=voc``) swaps in that group's file."""
    cfg = config_from_yaml(base) if isinstance(base, str) else base.copy()
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
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__" and not override.startswith("+"):
            close = difflib.get_close_matches(key, _flat_keys(OmegaConf.to_container(cfg)), n=5)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key {key!r}.{hint}")
        with open_dict(cfg):
            OmegaConf.update(cfg, key, yaml.safe_load(value) if value else None, merge=True)
    return cfg
