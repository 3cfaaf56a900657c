"""How a model runs on the machine a config asks for: CPU threads, the autocast dtype, the CUDA
backend switches (cuDNN autotuning, TF32), the fused optimizer and ``torch.compile``.

Shared by training, evaluation and the predictor (``detkit.load``), so that all three run a
model the same way. Everything that only pays on a GPU is decided here by a small pure function
of the config and the device, so that the CPU-only test suite can check the decisions.
"""

from __future__ import annotations

import inspect
import logging

import torch
from omegaconf import DictConfig
from torch import nn

from detkit.engine.config import ConfigError

logger = logging.getLogger(__name__)


def amp_setting(cfg: DictConfig) -> str | bool:
    """``engine.amp`` as ``"auto"``, ``True`` or ``False`` (a missing key means ``"auto"``)."""
    value = cfg.engine.get("amp", "auto")
    if isinstance(value, str) and value.lower() in ("auto", "true", "false"):
        value = {"auto": "auto", "true": True, "false": False}[value.lower()]
    if not (value == "auto" or isinstance(value, bool)):
        raise ConfigError(f"engine.amp must be auto, true or false, got {value!r}")
    return value


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX): there oneDNN's bf16
    convolutions run at up to twice float32's rate; elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and (
            torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        )
    except (AttributeError, RuntimeError):  # a torch build without these probes: assume not
        return False


def amp_dtype(cfg: DictConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype ``engine.amp`` asks for on ``device``, or ``None`` (float32).

    On CUDA ``auto`` (the default) is bf16 on GPUs that have it and off elsewhere: bf16 keeps
    float32's range, so it needs no gradient scaler and cannot overflow where fp32 does not.
    ``true`` also falls back to fp16 (with a scaler) on GPUs without bf16. On a CPU ``true`` is
    bf16 where the CPU has bf16 instructions (``cpu_has_native_bf16``) and float32 elsewhere;
    ``auto`` stays float32 there.
    """
    setting = amp_setting(cfg)
    if setting is False:
        return None
    if device.type == "cpu":
        if setting is True and not cpu_has_native_bf16():
            logger.info("engine.amp=true: this CPU has no bfloat16 instructions (AVX-512 BF16, AMX); using float32.")
            return None
        return torch.bfloat16 if setting is True else None
    if device.type != "cuda":
        return None
    bf16 = torch.cuda.is_bf16_supported()
    if setting == "auto":
        return torch.bfloat16 if bf16 else None
    return torch.bfloat16 if bf16 else torch.float16


def set_cpu_threads(cfg: DictConfig) -> None:
    """``engine.num_threads``: torch's intra-op CPU threads (null: torch's default, one per core).
    On a CPU shared with other jobs fewer threads can be much faster (measured on 2 cores under
    load: 1 thread stepped about 3.5x faster than 2)."""
    threads = cfg.engine.get("num_threads")
    if threads is not None:
        if int(threads) < 1:
            raise ConfigError(f"engine.num_threads must be a positive integer or null, got {threads}")
        torch.set_num_threads(int(threads))


def configure_backends(cfg: DictConfig, device: torch.device) -> dict[str, bool]:
    """On CUDA: ``engine.cudnn_benchmark`` (default on: cuDNN times its convolution algorithms
    once per input shape; detection batches are letterboxed to few shapes, so it pays) and
    ``engine.tf32`` (default on: float32 matmuls and convolutions on tensor cores, ~1e-3 relative
    error, which training and inference at this precision tolerate). Nothing changes on a CPU.
    Returns what was switched on, for the log."""
    switches = backend_switches(cfg, device)
    if device.type != "cuda":
        return switches
    torch.backends.cudnn.benchmark = switches["cudnn_benchmark"]
    # "high" lets float32 matmuls use TF32; the cuDNN flag does the same for convolutions.
    torch.set_float32_matmul_precision("high" if switches["tf32"] else "highest")
    torch.backends.cudnn.allow_tf32 = switches["tf32"]
    return switches


def backend_switches(cfg: DictConfig, device: torch.device) -> dict[str, bool]:
    """What :func:`configure_backends` sets on ``device``: all off on a CPU."""
    on_cuda = device.type == "cuda"
    return {
        "cudnn_benchmark": on_cuda and bool(cfg.engine.get("cudnn_benchmark", True)),
        "tf32": on_cuda and bool(cfg.engine.get("tf32", True)),
    }


def fused_optimizer_kwargs(cfg: DictConfig, optimizer_factory, device: torch.device) -> dict[str, bool]:
    """``{"fused": True}`` when ``engine.fused_optimizer`` (default on) and the optimizer runs on
    CUDA and accepts ``fused``: one kernel per parameter group instead of one per tensor and
    operation. Empty otherwise. On a CPU torch has fused kernels too, and a step over ResNet-18's
    parameters took 6.8 ms fused against 27.7 ms for AdamW's loop (2-core AMD EPYC, torch 2.14.1),
    but the main job trained no faster with them (71-80 s against 78-81 s, seeds 0-2, alone) and
    ended 0.6 to 1.8 points lower in mAP50 on each of the three seeds, so the CPU keeps the loop."""
    if device.type != "cuda" or not bool(cfg.engine.get("fused_optimizer", True)):
        return {}
    target = getattr(optimizer_factory, "func", optimizer_factory)  # functools.partial from _partial_
    try:
        accepts = "fused" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        accepts = False
    return {"fused": True} if accepts else {}


def compile_model(model: nn.Module, *, backend: str = "inductor", mode: str | None = None) -> list[str]:
    """``torch.compile`` the detector's backbone and neck in place (``nn.Module.compile``, so the
    state-dict keys, and with them checkpoints, stay as they are). The heads, target assignment
    and postprocessing keep eager mode: their shapes change with the number of objects, which
    would make the compiler recompile on almost every batch. Returns the compiled parts' names."""
    compiled = []
    for name in ("backbone", "neck"):
        part = getattr(model, name, None)
        if isinstance(part, nn.Module):
            # dynamic=False: the letterbox gives a handful of input shapes, each compiled once.
            part.compile(backend=backend, mode=mode, dynamic=False)
            compiled.append(name)
    if not compiled:
        raise ConfigError(f"engine.compile: {type(model).__name__} has no backbone or neck module to compile")
    return compiled
