"""Fine-tuning: start a model from a checkpoint trained on other data (``finetune=PATH``).

Which tensors carry over is decided per tensor, the same way for every detector family: a
tensor is *class-dependent* when its shape changes with the number of classes (classifier
scores, class-specific box regressors, YOLO/SSD prediction convolutions that hold per-class
channels). Those are found by building the model for C and C+1 classes (randomly initialised,
no pretrained weights) and comparing shapes, so a new head needs no declaration. When the
checkpoint's classes differ from the new data's (by name or order), every class-dependent tensor
is re-initialised — even when the class count happens to be equal, where a shape check alone
would keep a classifier whose rows mean other classes. Everything else is loaded. The report
(logged, and ``finetune_report.json`` in the run folder) names each re-initialised tensor.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from detkit.engine.checkpoint import load_model_weights
from detkit.engine.dist import unwrap_model

logger = logging.getLogger("detkit")


def class_dependent_keys(cfg: DictConfig, num_classes: int) -> list[str]:
    """State-dict keys of ``cfg.model`` whose shape depends on the number of classes."""
    from detkit.engine.build import build_model  # build imports this module's neighbours

    structure = copy.deepcopy(cfg)
    if "backbone" in structure.model and "pretrained" in structure.model.backbone:
        OmegaConf.update(structure, "model.backbone.pretrained", False)  # the structure is all we need
    shapes = []
    # On the CPU, not the meta device: some heads compute their initialisation from values.
    with torch.random.fork_rng(devices=[]):  # building draws random numbers; the run's stay as they were
        for count in (num_classes, num_classes + 1):
            model = build_model(structure, num_classes=count)
            shapes.append({key: tuple(value.shape) for key, value in model.state_dict().items()})
    return sorted(key for key, shape in shapes[0].items() if shapes[1].get(key) != shape)


def checkpoint_class_names(path: str | Path) -> list[str] | None:
    """The class names a detkit checkpoint was trained on; ``None`` for a plain state dict."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    names = state.get("class_names") if isinstance(state, dict) else None
    return [str(name) for name in names] if names else None


def finetune_from(
    path: str | Path,
    model: nn.Module,
    cfg: DictConfig,
    class_names: Sequence[str],
    *,
    report_path: Path | None = None,
) -> dict:
    """Load ``path`` into ``model`` for fine-tuning on data with ``class_names``.

    Class-dependent tensors (:func:`class_dependent_keys`) are left as initialised when the
    checkpoint's classes differ from ``class_names`` (or are unknown and their shapes differ);
    all other matching tensors are loaded. Returns the report: ``reinitialized`` (the
    class-dependent keys left initialised), ``loaded``, ``missing``, ``unexpected``,
    ``source_classes`` and ``target_classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"finetune={path}: no such checkpoint file")
    own_names = [str(name) for name in class_names]
    source_names = checkpoint_class_names(path)
    dependent = class_dependent_keys(cfg, len(own_names))
    same_classes = source_names == own_names
    model = unwrap_model(model)
    # Keep the class-dependent tensors as initialised: load everything else, then put them back.
    kept = {key: value.detach().clone() for key, value in model.state_dict().items() if key in dependent}
    loaded = load_model_weights(path, model, skip_mismatched=True)
    reinitialized: list[str] = []
    if not same_classes:
        with torch.no_grad():
            state = model.state_dict()
            for key, value in kept.items():
                state[key].copy_(value)
        reinitialized = sorted(kept)
    else:
        reinitialized = sorted(key.split(":")[0] for key in loaded["mismatched"])
    report = {
        "source": str(path),
        "source_classes": source_names,
        "target_classes": own_names,
        "reinitialized": reinitialized,
        "loaded": [key for key in loaded["loaded"] if key not in reinitialized],
        "missing": loaded["missing"],
        "unexpected": loaded["unexpected"],
    }
    why = ("the classes are the same: the whole model carries over" if same_classes else
           f"the checkpoint's classes ({', '.join(source_names[:8]) if source_names else 'not recorded'}) differ "
           f"from the data's ({', '.join(own_names[:8])})")
    logger.info("Fine-tuning from %s: %s; %d tensors loaded, %d class-dependent tensors re-initialised: %s",
                path, why, len(report["loaded"]), len(reinitialized), ", ".join(reinitialized) or "none")
    if report_path is not None:
        report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report
