"""Priors checked against the training data before training (and by ``detkit check config=…``).

``check_priors`` measures how many training boxes the model's anchors / default boxes / YOLOv3
anchors can match (``detkit.priors.coverage``), logs it, and below ``engine.prior_coverage_warn``
warns with the ``detkit fit-anchors`` command that fits them. With ``engine.refit_priors=true`` it
fits them itself (the k-means of ``detkit.priors.kmeans``, the same as ``fit-anchors``), rebuilds
the model with them and keeps them only if they cover more boxes; the new values are written into
the config, so the run's ``config.yaml`` and its checkpoints rebuild the same model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from detkit.priors.coverage import Priors, coverage_line, letterboxed_boxes, model_priors, prior_coverage
from detkit.priors.kmeans import group_by_level, kmeans_anchors, rpn_sizes_and_ratios, ssd_ratios_and_scales

logger = logging.getLogger("detkit")
MAX_BOXES = 20000  # a fixed random subset beyond this: the recall is a fraction, the cost is boxes × priors
DEFAULT_WARN = 0.7


def training_boxes(cfg: DictConfig, dataset) -> torch.Tensor:
    """Every training box as the model sees it after the letterbox: ``Tensor[M, 4] xyxy`` input
    pixels (at most ``MAX_BOXES``, a seeded subset beyond). ``dataset`` is any detkit dataset or
    wrapper exposing ``records``."""
    records = dataset.records
    boxes = letterboxed_boxes([r.boxes for r in records], [(r.height, r.width) for r in records],
                              _input_size(cfg, dataset))  # fmt: skip
    if boxes.shape[0] > MAX_BOXES:
        boxes = boxes[torch.randperm(boxes.shape[0], generator=torch.Generator().manual_seed(0))[:MAX_BOXES]]
    return boxes


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _leaves(child, f"{prefix}{key}.").items()}
    return {prefix[:-1]: node}


def _argument(key: str, value: Any) -> str:
    if isinstance(value, list):
        return f"'{key}=[{','.join(str(v) for v in value)}]'"
    return f"{key}={'null' if value is None else value}"


def fit_command(cfg: DictConfig, kind: str) -> str:
    """The ``detkit fit-anchors`` command that fits ``kind``'s priors to this config's data: the
    experiment, the data config, and every data key that differs from what those two compose to
    (the user's own data overrides: paths, class names, input size)."""
    from detkit.engine.config import ConfigError, load_config

    experiment, data_name = cfg.get("experiment", "EXPERIMENT"), cfg.data.get("name", "?")
    arguments = [f"config={experiment}", f"data={data_name}"]
    try:
        default = _leaves(OmegaConf.to_container(load_config(arguments).data, resolve=False))
    except ConfigError:  # not an experiment of configs/ (a stored config): name every data key
        default = {}
    current = _leaves(OmegaConf.to_container(cfg.data, resolve=False))
    # An input size the experiment leaves to the data (auto) is chosen the same way by fit-anchors.
    arguments += [_argument(f"data.{key}", value) for key, value in current.items()
                  if default.get(key, object()) not in (value, "auto") and value != "???"]  # fmt: skip
    return " ".join(["detkit fit-anchors", *arguments, f"for={kind}"])


def refit_values(cfg: DictConfig, kind: str, boxes: torch.Tensor) -> dict[str, Any]:
    """Config key → fitted value for ``kind``'s priors, keeping their counts per cell (so head
    shapes and fine-tuning checkpoints still fit)."""
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
    if kind == "rpn":
        generator = cfg.model.proposal_generator
        sizes, ratios = rpn_sizes_and_ratios(wh, len(generator.anchor_sizes), len(generator.aspect_ratios))
        return {"model.proposal_generator.anchor_sizes": sizes, "model.proposal_generator.aspect_ratios": ratios}
    if kind == "yolov3":
        anchors = cfg.model.head.anchors
        seed = int(cfg.get("seed", 0))
        if not OmegaConf.is_list(anchors[0][0]):  # YOLOv2: one grid, a flat list of (w, h) pairs
            return {"model.head.anchors": group_by_level(kmeans_anchors(wh, len(anchors), seed=seed), 1)[0]}
        fitted = kmeans_anchors(wh, len(anchors) * len(anchors[0]), seed=seed)
        return {"model.head.anchors": group_by_level(fitted, len(anchors))}
    if kind == "ssd":
        head = cfg.model.head
        size = int(cfg.data.input_size)  # resolved by check_priors
        per_level = OmegaConf.is_list(head.aspect_ratios[0]) if len(head.aspect_ratios) else False
        count = max((len(level) for level in head.aspect_ratios), default=0) if per_level else len(head.aspect_ratios)
        ratios, (low, high) = ssd_ratios_and_scales(wh, (size, size), max(count, 1))
        ratios = ratios[:count]
        fitted = [ratios[: len(level)] for level in head.aspect_ratios] if per_level else ratios
        # first_scale off: the fitted range starts at the small boxes on the first level itself.
        return {"model.head.aspect_ratios": fitted, "model.head.min_scale": low, "model.head.max_scale": high,
                "model.head.first_scale": None, "model.head.scales": None}  # fmt: skip
    raise ValueError(f"no refit for priors of kind {kind!r}")


def _apply(cfg: DictConfig, values: dict[str, Any]) -> None:
    with open_dict(cfg):
        for key, value in values.items():
            OmegaConf.update(cfg, key, value, merge=False)


def _input_size(cfg: DictConfig, dataset) -> int:
    """``data.input_size``, resolved first (as training does) where it is ``auto``."""
    from detkit.engine.build import is_auto, resolve_input_size

    if is_auto(cfg.data.input_size):
        resolve_input_size(cfg, dataset)
    return int(cfg.data.input_size)


def _advice(cfg: DictConfig, report: dict, kind: str) -> dict[str, str]:
    """Below ``engine.prior_coverage_warn``: ``{"warning": text}``, plus ``"fit_command"`` when
    fitting the priors' shapes can help (it cannot when the shapes already fit and the grid is
    what misses the boxes). ``{}`` otherwise."""
    warn = float(cfg.engine.get("prior_coverage_warn", DEFAULT_WARN))
    if report["recall"] is None or report["recall"] >= warn:
        return {}
    below = f"prior coverage {100 * report['recall']:.1f}% is below engine.prior_coverage_warn={warn:g}"
    if report.get("shape_recall", 0.0) >= warn:
        return {"warning": f"{below}, but the priors' shapes fit ({100 * report['shape_recall']:.1f}% when centred "
                           "on the boxes): their grid is too coarse for these boxes. A larger data.input_size (or a "
                           "finer feature map) is the fix; refitting their shapes is not"}  # fmt: skip
    command = fit_command(cfg, kind)
    return {"fit_command": command, "warning": f"{below}: fit the priors to this data with `{command}` and set the "
                                               "printed values in the experiment, or train with "
                                               "engine.refit_priors=true"}  # fmt: skip


def describe_priors(cfg: DictConfig, dataset, model: nn.Module | None = None) -> dict:
    """What ``detkit check config=…`` reports: the coverage of the experiment's priors (the model
    built from ``cfg`` unless given) on ``dataset``'s boxes, a one-line summary (``"line"``) and,
    below ``engine.prior_coverage_warn``, the ``"warning"`` (and the ``"fit_command"`` that helps)."""
    from detkit.engine.build import build_model

    input_size = _input_size(cfg, dataset)
    if model is None:
        model = build_model(cfg, num_classes=len(dataset.class_names))
    priors = model_priors(model, input_size)
    if not isinstance(priors, Priors):
        return {"priors": None, "note": priors, "line": f"prior coverage: {priors}"}
    report = prior_coverage(training_boxes(cfg, dataset), priors)
    result = {"priors": priors.kind, "coverage": report, "line": f"prior coverage: {coverage_line(report)}"}
    result.update(_advice(cfg, report, priors.kind))
    if "warning" in result:
        result["line"] += f"\nwarning: {result['warning']}"
    return result


def check_priors(
    cfg: DictConfig, model: nn.Module, dataset, build_model: Callable[[DictConfig], nn.Module]
) -> tuple[nn.Module, dict]:
    """Measure, log and (with ``engine.refit_priors``) refit the priors of ``model`` on the
    training ``dataset``. Returns the model to train (``build_model(cfg)`` rebuilt after a kept
    refit, ``cfg`` then updated in place) and a JSON-ready report."""
    input_size = _input_size(cfg, dataset)
    priors = model_priors(model, input_size)
    if not isinstance(priors, Priors):
        logger.info("Prior coverage: %s", priors)
        return model, {"priors": None, "note": priors}
    boxes = training_boxes(cfg, dataset)
    report = prior_coverage(boxes, priors)
    logger.info("Prior coverage: %s", coverage_line(report))
    result = {"priors": priors.kind, "coverage": report, **_advice(cfg, report, priors.kind)}
    if "warning" not in result:
        return model, result
    if "fit_command" not in result or not cfg.engine.get("refit_priors", False):
        logger.warning("%s", result["warning"][0].upper() + result["warning"][1:])
        return model, result
    values = refit_values(cfg, priors.kind, boxes)
    previous = {key: OmegaConf.select(cfg, key) for key in values}
    previous = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in previous.items()}
    _apply(cfg, values)
    refitted_model = build_model(cfg)
    refitted = prior_coverage(boxes, model_priors(refitted_model, input_size))
    result["refit"] = {"values": values, "previous": previous, "coverage": refitted}
    if refitted["recall"] > report["recall"]:
        logger.info("Priors refit to the data (engine.refit_priors): %s; %s", values, coverage_line(refitted))
        result["refit"]["kept"] = True
        return refitted_model, result
    _apply(cfg, previous)
    logger.warning("Priors refit to the data cover no more boxes (%.1f%% vs %.1f%%): kept the experiment's",
                   100 * refitted["recall"], 100 * report["recall"])  # fmt: skip
    result["refit"]["kept"] = False
    return model, result
