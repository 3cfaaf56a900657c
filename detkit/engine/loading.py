"""Checkpoint → a detector ready for inference: the one way detkit loads a trained model.

``detkit.load`` (the user's entry point), evaluation of a checkpoint, R-CNN's SVM fitting, the
speed tools and export all build on :func:`load_detector`. Loading is strict: every tensor must
match the model the stored config builds, or each mismatch is named and the load refused (only
fine-tuning, ``finetune=``, loads leniently, through ``detkit.engine.finetune``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from detkit.engine.build import build_model, input_size
from detkit.engine.checkpoint import load_inference_weights, read_checkpoint
from detkit.engine.config import ConfigError, load_config_with_overrides
from detkit.engine.dist import select_device
from detkit.engine.runtime import amp_dtype, configure_backends


@dataclass
class LoadedDetector:
    """A trained detector in eval mode on its device, with what running it needs: its config, its
    class names (label ``i`` is ``class_names[i - 1]``), the autocast dtype it runs under (None:
    float32), its square input size, the checkpoint it came from and what runs it."""

    model: nn.Module
    cfg: DictConfig
    class_names: list[str]
    device: torch.device
    amp_dtype: torch.dtype | None
    input_size: int
    source: str
    #: What runs ``model``: ``torch``, or a runtime backend (``detkit.export.backend``), whose
    #: cached export ``export`` describes, at ``precision`` (``fp32``, or ``int8`` for a runtime).
    backend: str = "torch"
    export: Any = None
    precision: str = "fp32"


def load_detector(
    checkpoint: str | os.PathLike, *, device: str | None = None, overrides: Sequence[str] = ()
) -> LoadedDetector:
    """The detector of a detkit checkpoint. ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``
    (default: the stored config's ``engine.device``). ``overrides``: ``key=value`` changes to the
    stored config before the model is built; one that alters the model's tensors fails the load."""
    source = str(checkpoint)
    state = read_checkpoint(checkpoint)
    if not state.get("config_yaml"):
        raise ConfigError(f"{source} stores no config; it was not written by detkit's trainer")
    names = [str(name) for name in state.get("class_names") or ()]
    if not names:
        raise ConfigError(f"{source} stores no class names; it was not written by detkit's trainer")
    cfg = load_config_with_overrides(state["config_yaml"], overrides)
    model = build_model(cfg, num_classes=len(names))
    load_inference_weights(state, model, source=source)
    target_device = select_device(device or str(cfg.engine.get("device", "auto")))
    configure_backends(cfg, target_device)  # cuDNN autotuning and TF32 on a GPU, as in training
    return LoadedDetector(
        model=model.to(target_device).eval(),
        cfg=cfg,
        class_names=names,
        device=target_device,
        amp_dtype=amp_dtype(cfg, target_device),
        input_size=input_size(cfg),
        source=source,
    )
