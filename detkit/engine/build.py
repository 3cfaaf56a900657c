"""Config → objects: datasets, models, optimizers and schedulers from a composed config. With
``detkit.engine.config`` (composition), the only modules of detkit that know Hydra: everything else
takes plain keyword arguments, so models, heads and datasets can be used without any config system.
"""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from detkit.data.augment.mixup import MixUp
from detkit.data.augment.mosaic import Mosaic
from detkit.data.augment.transforms import eval_transforms, train_transforms
from detkit.data.input_size import choose_input_size, dataset_longer_sides
from detkit.engine.config import (  # noqa: F401  (re-exported: the tools import them from here)
    ConfigError,
    config_dir,
    config_from_yaml,
    config_to_yaml,
    instantiate_dataset,
    load_config,
    load_config_with_overrides,
)
from detkit.engine.hooks.lr import build_lr_scheduler
from detkit.engine.runtime import fused_optimizer_kwargs

logger = logging.getLogger("detkit")


def build_dataset(cfg: DictConfig, split: str, *, augment: bool | None = None):
    """The ``train`` or ``val`` dataset of ``cfg.data`` with its transforms (augmentation for the
    training split unless ``augment=False``; with augmentation, ``data.mosaic.p`` and
    ``data.mixup.p`` > 0 add mosaics and blends). ``data.input_size: auto`` is resolved here first
    (:func:`resolve_input_size`), so ``cfg`` holds a number afterwards."""
    augment = (split == "train") if augment is None else augment
    dataset = instantiate_dataset(cfg, split)
    if is_auto(cfg.data.input_size):
        resolve_input_size(cfg, dataset if split == "train" else instantiate_dataset(cfg, "train"))
    return prepare_dataset(cfg, dataset, split, augment=augment)


def is_auto(value) -> bool:
    return isinstance(value, str) and value.lower() == "auto"


def input_size(cfg: DictConfig) -> int:
    """``data.input_size`` as a number. A run's config (and its checkpoints) hold the number
    training chose; a config composed by hand may still say ``auto``, which is then resolved from
    the training split, as training would."""
    if is_auto(cfg.data.input_size):
        return resolve_input_size(cfg, instantiate_dataset(cfg, "train"))
    return int(cfg.data.input_size)


def resolve_input_size(cfg: DictConfig, train_set) -> int:
    """Replace ``data.input_size: auto`` in ``cfg`` by the size :func:`choose_input_size` picks
    for the training split within ``data.auto_input_size``; returns the size (logged)."""
    limits = cfg.data.get("auto_input_size") or {}
    try:
        size = choose_input_size(
            dataset_longer_sides(train_set),
            min_size=int(limits.get("min", 160)), max_size=int(limits.get("max", 640)),
            multiple=int(limits.get("multiple", 32)),
        )
    except ValueError as error:
        raise ConfigError(f"data.auto_input_size: {error}") from None
    OmegaConf.update(cfg, "data.input_size", size, force_add=True)
    logger.info("Input size %d px (data.input_size=auto: median longer image side of the %d training images, "
                "within data.auto_input_size %s)", size, len(train_set),
                OmegaConf.to_container(limits) if limits else {})
    return size


def prepare_dataset(cfg: DictConfig, dataset, split: str, *, augment: bool):
    """``dataset`` (as :func:`instantiate_dataset` built it) with the recipe's transforms and wrappers."""
    if is_auto(cfg.data.input_size):
        raise ConfigError("data.input_size is auto: build the dataset with build_dataset, which resolves it")
    size = int(cfg.data.input_size)
    dataset.transforms = train_transforms(size, **cfg.data.get("augment", {})) if augment else eval_transforms(size)
    proposals = cfg.data.get("proposals")
    with_proposals = proposals is not None and proposals.get("enabled", False)
    # Mixing augmentations, in this order (mixup blends mosaics, as YOLOv5 does); training only.
    for key, wrapper in (("mosaic", Mosaic), ("mixup", MixUp)):
        probability = float(cfg.data.get(key, {}).get("p", 0.0))
        if augment and probability > 0:
            if with_proposals:
                raise ConfigError(f"data.{key} cannot be combined with precomputed proposals (data.proposals.enabled)")
            dataset = wrapper(dataset, p=probability)
    if with_proposals:
        dataset = instantiate(proposals.wrapper, dataset=dataset, split=split)
    return dataset


def build_model(cfg: DictConfig, num_classes: int) -> nn.Module:
    return instantiate(cfg.model, num_classes=num_classes)


def build_optimizer(
    cfg: DictConfig, model: nn.Module, device: torch.device | None = None, *, include_frozen: bool = False
) -> torch.optim.Optimizer:
    """The configured optimizer, without weight decay on norm layers and biases; fused kernels on
    CUDA (``engine.fused_optimizer``) when ``device`` is a GPU. Frozen parameters are left out
    unless ``include_frozen`` (they are unfrozen later: they take no step while they have no
    gradient)."""
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad and not include_frozen:
                continue
            (no_decay if is_norm or name == "bias" else decay).append(param)
    factory = instantiate(cfg.optimizer)
    weight_decay = cfg.optimizer.get("weight_decay", 0.0)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return factory(groups, **fused_optimizer_kwargs(cfg, factory, torch.device(device or "cpu")))


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
