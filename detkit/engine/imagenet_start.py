"""Pointing a from-scratch run on one's own data at the experiment that starts from ImageNet.

The ``*_shapes`` recipes train from random weights, which suits the built-in shapes and little else:
on a user's own data the ``*_efficientnet_lite0`` experiments reach the same accuracy in a fraction
of the iterations. A run that trains from scratch on other data says so once, naming the experiment.
"""

from __future__ import annotations

from omegaconf import DictConfig

from detkit.engine.config import config_dir

IMAGENET_SUFFIX = "_efficientnet_lite0"


def imagenet_experiment_for(experiment: str) -> str | None:
    """The ``*_efficientnet_lite0`` experiment of ``experiment``'s detector family (the longest
    family name that prefixes it), or None where there is none."""
    families = sorted(
        (
            path.stem.removesuffix(IMAGENET_SUFFIX)
            for path in (config_dir() / "config").glob(f"*{IMAGENET_SUFFIX}.yaml")
        ),
        key=len,
        reverse=True,
    )
    family = next((name for name in families if experiment.startswith(f"{name}_")), None)
    if family is None or experiment == f"{family}{IMAGENET_SUFFIX}":
        return None
    return f"{family}{IMAGENET_SUFFIX}"


def from_scratch_hint(cfg: DictConfig) -> str | None:
    """One line for a run that trains its backbone from random weights on data other than the
    built-in shapes, naming the experiment that starts from ImageNet; None otherwise."""
    if cfg.data.get("name") in ("shapes", "shapes_single"):
        return None
    if cfg.model.get("backbone", {}).get("pretrained"):
        return None
    suggestion = imagenet_experiment_for(str(cfg.get("experiment", "")))
    if suggestion is None:
        return None
    return (
        f"{cfg.experiment} trains its backbone from random weights. On your own data "
        f"config={suggestion} starts from ImageNet and reaches a given accuracy in a fraction of the "
        "iterations (docs/FINETUNING.md)."
    )
