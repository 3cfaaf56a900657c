"""Getting pretrained weights into a backbone: from torchvision's hub cache, a weights folder or a file.

Everything here fails with a message that names the file and where it was looked for, because
the usual failure is an offline machine that has not been given the file yet (see weights/README.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor, nn

# ImageNet classifier heads: present in torchvision checkpoints, never part of a backbone.
CLASSIFIER_PREFIXES = ("fc.", "classifier.")
_WRAPPER_KEYS = ("state_dict", "model")
_SHOWN = 8  # keys listed per kind of problem in an error message


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Read a state dict from ``path``: a plain one, or a checkpoint holding it under "state_dict"/"model".

    DDP's ``module.`` prefix is removed. Loads with ``weights_only=True`` (no pickled code runs).
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights file {path} does not exist (relative paths start at {Path.cwd()})"
        )
    try:
        loaded: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"could not read {path} as a PyTorch weights file: {err}") from err
    for _ in range(2):  # a training checkpoint may nest the state dict one level down
        if isinstance(loaded, Mapping):
            wrapped = next((loaded[k] for k in _WRAPPER_KEYS if isinstance(loaded.get(k), Mapping)), None)
            if wrapped is not None:
                loaded = wrapped
    if not isinstance(loaded, Mapping):
        raise RuntimeError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    state = {str(k): v for k, v in loaded.items() if isinstance(v, Tensor)}
    if not state:
        raise RuntimeError(f"{path} holds no tensors (top-level keys: {_preview(list(loaded))})")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def load_matching(
    model: nn.Module,
    state: Mapping[str, Tensor],
    *,
    origin: str,
    is_unbuilt_key: Callable[[str], bool],
) -> None:
    """Load ``state`` into ``model`` strictly, except for keys a backbone legitimately lacks.

    Ignored: classifier keys (``fc.``, ``classifier.``), keys of stages the backbone did not build
    (``is_unbuilt_key``) and missing ``num_batches_tracked`` counters. Everything else must match
    in name and shape; otherwise a ``RuntimeError`` lists the offending keys and names ``origin``.
    A detector checkpoint is accepted too: its ``backbone.`` entries are used.
    """
    own = model.state_dict()
    if not any(k in own for k in state) and any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    usable = {
        k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES) and not is_unbuilt_key(k)
    }
    missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in usable if k not in own]
    mismatched = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in usable.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing key(s): {_preview(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected key(s): {_preview(unexpected)}")
        if mismatched:
            problems.append(f"{len(mismatched)} shape mismatch(es): {_preview(mismatched)}")
        raise RuntimeError(
            f"{origin} does not fit {type(model).__name__} (was it saved from another architecture, "
            f"batch_norm or width_mult setting?): " + "; ".join(problems)
        )
    model.load_state_dict({k: v for k, v in usable.items() if k in own}, strict=False)


def torchvision_imagenet_weights(weights: Any, *, arch: str) -> tuple[dict[str, Tensor], str]:
    """Fetch ``weights`` (a torchvision weights enum member) through torchvision's hub cache.

    Returns the state dict and a description of where it came from.
    torchvision downloads into ``<torch.hub.get_dir()>/checkpoints/`` unless the file is already
    there; when the download fails (offline), the error says which file to put where.
    """
    url: str = weights.url
    filename = os.path.basename(urlparse(url).path)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / filename
    was_cached = cached.is_file()
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as err:
        if was_cached:
            raise RuntimeError(
                f"the cached ImageNet weights for {arch} at {cached} could not be loaded ({err}); "
                f"replace the file with a good copy of {filename} from {url}"
            ) from err
        raise RuntimeError(
            f"ImageNet weights for {arch} ({filename}) are not in the torch hub cache and could not be "
            f"downloaded from {url} ({type(err).__name__}: {err}). On a machine without internet, "
            f"copy {filename} to {cached} (the torch hub checkpoints folder; set TORCH_HOME to move it), "
            f"or pass the file itself: pretrained=/path/to/{filename} "
            f"(Hydra: model.backbone.pretrained=/path/to/{filename}). See weights/README.md."
        ) from err
    return state, f"torchvision's {arch} ImageNet weights ({cached})"


def find_weights_file(filename: str, *, arch: str) -> Path:
    """Find ``filename`` in ``$DETKIT_WEIGHTS`` (a folder) or ``./weights/``, in that order."""
    env_dir = os.environ.get("DETKIT_WEIGHTS")
    candidates = ([Path(env_dir).expanduser() / filename] if env_dir else []) + [
        Path.cwd() / "weights" / filename
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    env_note = "" if env_dir else " ($DETKIT_WEIGHTS is not set)"
    raise RuntimeError(
        f"pretrained=True for {arch} needs the weights file {filename}, which torchvision does not "
        f"provide; looked in {', '.join(str(c) for c in candidates)}{env_note}. Put the file in a "
        f"'weights' folder under the current directory, or in the folder $DETKIT_WEIGHTS names, or pass "
        f"pretrained=/path/to/{filename}. See weights/README.md."
    )


def _preview(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")
