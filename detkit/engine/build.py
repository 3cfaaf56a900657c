"""Config → objects: datasets, models, optimizers and schedulers from a composed config. With
``detkit.engine.config`` (composition), the only modules of detkit that know Hydra: everything else
takes plain keyword arguments, so models, heads and datasets can be used without any config system.
"""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from detkit.data.mixup import MixUp
from detkit.data.mosaic import Mosaic
from detkit.data.transforms import eval_transforms, train_transforms
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


def build_dataset(cfg: DictConfig, split: str, *, augment: bool | None = None):
    """The ``train`` or ``val`` dataset of ``cfg.data`` with its transforms (augmentation for the
    training split unless ``augment=False``; with augmentation, ``data.mosaic.p`` and
    ``data.mixup.p`` > 0 add mosaics and blends)."""
    augment = (split == "train") if augment is None else augment
    size = int(cfg.data.input_size)
    transforms = train_transforms(size, **cfg.data.get("augment", {})) if augment else eval_transforms(size)
    dataset = instantiate_dataset(cfg, split, transforms=transforms)
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
