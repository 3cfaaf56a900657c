"""Checkpoints: plain-data files for exact resume, and weight loading for fine-tuning.

A checkpoint is a dict of tensors and plain Python data only (it loads with
``torch.load(path, weights_only=True)``)::

    format            "detkit-checkpoint"      format_version  1
    model             state_dict (no DDP "module." prefixes)
    optimizer, scheduler, scaler, ema    their state_dicts, or None
    iteration         completed training iterations (the next run starts there)
    epoch             iteration // iterations-per-epoch
    rng_states        one entry per rank (see detkit.utils.seeding.capture_rng_state)
    config_yaml       the resolved config, as YAML text
    class_names       class_names[i] is label i + 1
    extra             anything else (the trainer's own state lives here)
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detkit.engine.dist import get_rank, get_world_size, unwrap_model
from detkit.utils.atomic_file import atomic_file
from detkit.utils.seeding import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

FORMAT = "detkit-checkpoint"
FORMAT_VERSION = 1
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def save_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: Any | None = None,
    iteration: int,
    epoch: int,
    config_yaml: str = "",
    class_names: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    rng_states: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a checkpoint atomically: to a temporary file beside ``path``, then ``os.replace``.

    A crash while writing leaves any previous file at ``path`` intact. ``rng_states`` defaults
    to this process's state; distributed callers pass every rank's (rank order).
    """
    path = Path(path)
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": unwrap_model(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "ema": ema.state_dict() if ema is not None else None,
        "iteration": int(iteration),
        "epoch": int(epoch),
        "rng_states": rng_states if rng_states is not None else [capture_rng_state()],
        "config_yaml": str(config_yaml),
        "class_names": [str(name) for name in class_names],
        "extra": dict(extra or {}),
        "torch_version": str(torch.__version__),
    }
    # CPU tensors: the file then loads on a machine without the GPU it was trained on.
    state = _to_cpu(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "wb") as file:
        torch.save(state, file)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a detkit checkpoint to CPU with ``weights_only=True``; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        nearby = sorted(p.name for p in path.parent.glob("*.pt")) if path.parent.is_dir() else []
        hint = f" Checkpoints in {path.parent}: {', '.join(nearby)}." if nearby else ""
        raise FileNotFoundError(f"checkpoint not found: {path}.{hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} holds pickled Python objects, which detkit checkpoints never do; refusing to "
            f"load it with weights_only=True ({err})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path} could not be read as a torch file (truncated or corrupt?): {err}") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        keys = sorted(state)[:8] if isinstance(state, dict) else type(state).__name__
        raise ValueError(
            f"{path} is not a detkit checkpoint (top-level keys: {keys}). To initialise a model "
            "from other weights use detkit.engine.checkpoint.load_model_weights."
        )
    if state.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format {state['format_version']}, newer than this detkit "
            f"understands ({FORMAT_VERSION}); upgrade detkit"
        )
    return state


def load_checkpoint(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: Any | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore everything an exact resume needs into the given objects; return the checkpoint.

    The model must match the checkpoint exactly (strict load); a shape mismatch lists the keys
    and points at :func:`load_model_weights` for fine-tuning. ``restore_rng`` restores this
    rank's generator states. The returned dict holds ``iteration``, ``epoch``, ``config_yaml``,
    ``class_names``, ``extra`` and ``rng_states`` for the caller.
    """
    state = read_checkpoint(path)
    _load_model_strict(
        unwrap_model(model), state["model"], source=str(path), class_names=state["class_names"], hint=_RESUME_HINT
    )
    for name, target in (("optimizer", optimizer), ("scheduler", scheduler), ("ema", ema)):
        if target is None:
            continue
        if state.get(name) is None:
            raise ValueError(f"{path} has no {name} state to resume from (it was saved without one)")
        target.load_state_dict(state[name])
    if scaler is not None and scaler.is_enabled():
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        else:
            logger.warning("%s was saved without AMP; the gradient scaler starts fresh.", path)
    if restore_rng:
        rng = _rng_state_for_this_rank(state["rng_states"], str(path))
        if rng is not None:
            restore_rng_state(rng)
    logger.info("Resumed from %s at iteration %d.", path, state["iteration"])
    return state


def load_inference_weights(state: Mapping[str, Any], model: nn.Module, *, source: str) -> None:
    """Load a detkit checkpoint's weights (its EMA weights when it has them, as evaluation during
    training used) into ``model`` for inference: every tensor must match, by name and shape.

    A missing, unexpected or mis-shaped tensor raises ``ValueError`` naming each one, so a model
    never runs partly initialised (fine-tuning, which expects that, uses :func:`load_model_weights`).
    """
    weights = _model_weights_from(state, use_ema=bool(state.get("ema")), source=source)
    _load_model_strict(
        unwrap_model(model), weights, source=source, class_names=state.get("class_names", ()), hint=_INFERENCE_HINT
    )


def load_model_weights(
    path_or_state: str | Path | Mapping[str, Any],
    model: nn.Module,
    *,
    skip_mismatched: bool = False,
    use_ema: bool = False,
) -> dict[str, list]:
    """Load the matching tensors of a checkpoint (or plain state_dict) into ``model``.

    For fine-tuning and pretrained backbones: keys missing from the source stay as initialised,
    and extra source keys are ignored; both are reported. A shape mismatch (typically the class
    count of a head) raises unless ``skip_mismatched``, which leaves those tensors initialised.
    ``use_ema`` takes the EMA weights of a detkit checkpoint when it has them.
    Returns ``{"loaded", "missing", "unexpected", "mismatched"}`` lists of keys.
    """
    source = str(path_or_state) if isinstance(path_or_state, str | Path) else "the given state_dict"
    if isinstance(path_or_state, str | Path):
        path = Path(path_or_state)
        if not path.is_file():
            read_checkpoint(path)  # raises the FileNotFoundError with nearby files
        raw = torch.load(path, map_location="cpu", weights_only=True)
    else:
        raw = path_or_state
    weights = _model_weights_from(raw, use_ema=use_ema, source=source)
    model = unwrap_model(model)
    own = model.state_dict()
    loaded, mismatched = {}, []
    for key, value in weights.items():
        if key in own:
            if tuple(value.shape) == tuple(own[key].shape):
                loaded[key] = value
            else:
                mismatched.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(own[key].shape)}")
    report = {
        "loaded": sorted(loaded),
        "missing": sorted(set(own) - set(weights)),
        "unexpected": sorted(set(weights) - set(own)),
        "mismatched": mismatched,
    }
    if mismatched and not skip_mismatched:
        raise ValueError(
            f"{source}: {len(mismatched)} tensor(s) differ in shape from the model:\n  "
            + "\n  ".join(mismatched)
            + "\nPass skip_mismatched=True to leave them initialised (e.g. a head for another class count)."
        )
    if not loaded:
        raise ValueError(
            f"{source}: no tensor name matches the model. Checkpoint keys look like "
            f"{list(weights)[:3]}, model keys like {list(own)[:3]}."
        )
    model.load_state_dict(loaded, strict=False)
    logger.info(
        "Loaded %d/%d tensors from %s (%d missing, %d unexpected, %d skipped for shape).",
        len(loaded),
        len(own),
        source,
        len(report["missing"]),
        len(report["unexpected"]),
        len(mismatched),
    )
    for kind in ("missing", "unexpected"):
        if report[kind]:
            logger.info(
                "  %s: %s", kind, ", ".join(report[kind][:20]) + (" ..." if len(report[kind]) > 20 else "")
            )
    for line in mismatched:
        logger.warning("  skipped (shape): %s", line)
    return report


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes from every key."""
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(item) for item in value)
    return value


def _model_weights_from(raw: Any, *, use_ema: bool, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: expected a checkpoint or state_dict, found {type(raw).__name__}")
    if raw.get("format") == FORMAT:
        if use_ema and raw.get("ema"):
            raw = raw["ema"]["module"]
        else:
            raw = raw["model"]
    elif "state_dict" in raw and isinstance(raw["state_dict"], Mapping):  # common third-party layout
        raw = raw["state_dict"]
    elif "model" in raw and isinstance(raw["model"], Mapping):
        raw = raw["model"]
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{source}: holds no tensors to load")
    return strip_wrapper_prefixes(tensors)


_RESUME_HINT = (
    "Resuming needs the same model config. To fine-tune (e.g. with a different number of "
    "classes), load weights with load_model_weights(path, model, skip_mismatched=True)."
)
_INFERENCE_HINT = (
    "Inference builds the model from the config stored in the checkpoint and needs every tensor; "
    "a checkpoint from another detkit version or with renamed layers cannot be used as it is. "
    "To start training from its matching tensors instead, use finetune=PATH."
)


def _load_model_strict(
    model: nn.Module, weights: Mapping[str, torch.Tensor], *, source: str, class_names: Sequence[str], hint: str
) -> None:
    weights = strip_wrapper_prefixes(weights)
    own = model.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in weights.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if mismatched or missing or unexpected:
        # Every tensor is named, however many: whoever compares two model versions needs the whole list.
        lines = [f"{source} does not match the model:"]
        if mismatched:
            lines.append(f"  shape mismatch ({len(mismatched)}): " + "; ".join(mismatched))
        if missing:
            lines.append(f"  missing from checkpoint ({len(missing)}): " + ", ".join(missing))
        if unexpected:
            lines.append(f"  not in model ({len(unexpected)}): " + ", ".join(unexpected))
        if mismatched and class_names:
            lines.append(
                f"  the checkpoint was trained on {len(class_names)} classes: {', '.join(class_names[:10])}"
            )
        lines.append(hint)
        raise ValueError("\n".join(lines))
    model.load_state_dict(weights, strict=True)


def _rng_state_for_this_rank(rng_states: list[dict[str, Any]], source: str) -> dict[str, Any] | None:
    if not rng_states:
        return None
    rank, world_size = get_rank(), get_world_size()
    if len(rng_states) == world_size:
        return rng_states[rank]
    logger.warning(
        "%s holds RNG states for %d rank(s) but this run has %d; using rank 0's, so random "
        "streams will differ from an uninterrupted run.",
        source,
        len(rng_states),
        world_size,
    )
    return rng_states[0]
