"""How a model runs on the machine a config asks for: CPU threads and the autocast dtype.

Shared by training, evaluation and the predictor (``detkit.load``), so that all three run a
model the same way.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from detkit.engine.config import ConfigError


def amp_dtype(cfg: DictConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``engine.amp`` asks for on ``device`` (bf16 where the GPU has it, else
    fp16), or ``None``: AMP runs on CUDA only."""
    if not cfg.engine.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def set_cpu_threads(cfg: DictConfig) -> None:
    """``engine.num_threads``: torch's intra-op CPU threads (null: torch's default, one per core).
    On a CPU shared with other jobs fewer threads can be much faster (measured on 2 cores under
    load: 1 thread stepped about 3.5x faster than 2)."""
    threads = cfg.engine.get("num_threads")
    if threads is not None:
        if int(threads) < 1:
            raise ConfigError(f"engine.num_threads must be a positive integer or null, got {threads}")
        torch.set_num_threads(int(threads))
