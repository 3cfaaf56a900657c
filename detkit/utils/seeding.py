"""Seeding and random-number-generator state, as plain data.

``capture_rng_state`` / ``restore_rng_state`` move the Python, NumPy and torch (CPU and CUDA)
generator states in and out of a dict that holds only tensors, lists and ints, so checkpoints
carrying it load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    ``deterministic=True`` also asks torch for deterministic kernels (cuDNN autotuning off,
    ``torch.use_deterministic_algorithms`` in warn-only mode, since a few detection ops such as
    ``roi_align``'s backward have no deterministic CUDA kernel) at some cost in speed.
    In distributed runs pass ``seed + rank`` when each rank should augment differently.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # cuBLAS needs this set before its first call to be reproducible.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader ``worker_init_fn`` for detkit's data pipelines.

    Seeding needs nothing here: torch seeds ``random``, NumPy and torch in each worker from the
    loader's per-epoch ``base_seed`` and the worker id, so augmentations differ between workers
    and repeat with the loader's generator. What it does is stop OpenCV (behind albumentations)
    from starting a thread pool per worker, which would oversubscribe the CPU
    ``num_workers``-fold.
    """
    del worker_id
    import cv2  # only data workers need it

    cv2.setNumThreads(0)
    cv2.ocl.setUseOpenCL(False)


def capture_rng_state() -> dict[str, Any]:
    """This process's generator states as tensors and plain lists (``weights_only``-loadable)."""
    py_version, py_internal, py_gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": [np_kind, np_keys.tolist(), int(np_pos), int(np_has_gauss), float(np_cached)],
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    py_version, py_internal, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_internal), py_gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = state["numpy"]
    np.random.set_state((np_kind, np.asarray(np_keys, dtype=np.uint32), np_pos, np_has_gauss, np_cached))
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = state.get("cuda") or []
    if cuda_states:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda_states):
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])
        else:
            logger.warning(
                "Not restoring CUDA RNG state: saved for %d device(s), %d visible now.",
                len(cuda_states),
                torch.cuda.device_count() if torch.cuda.is_available() else 0,
            )
