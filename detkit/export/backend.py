"""``detkit.load(..., backend=...)``: a loaded detector switched to an inference backend.

The predictor built on it keeps its interface (preprocessing, proposals, result dicts); only its
``model`` becomes a :class:`~detkit.export.runtimes.RuntimeDetector` running the checkpoint's cached ONNX
export (``detkit.export.cache``). The runtimes run on the CPU, so the predictor's device becomes
the CPU and mixed precision is off: the graph is float32, as the PyTorch model on a CPU.
``detector.export`` (a :class:`~detkit.export.cache.CachedExport`) says which file runs and
whether this load exported it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from detkit.export.cache import cached_onnx_export
from detkit.export.runtimes import import_runtime, resolve_backend, runtime_detector

if TYPE_CHECKING:
    from detkit.engine.loading import LoadedDetector

logger = logging.getLogger(__name__)


def run_with_backend(detector: LoadedDetector, backend: str) -> LoadedDetector:
    """``detector`` with its model run by ``backend`` (``torch``, ``onnxruntime``, ``openvino``
    or ``auto``, see ``detkit.export.runtimes``); ``torch`` leaves it as it is."""
    name = resolve_backend(backend, detector.device)
    if name == "torch":
        return replace(detector, backend=name)
    import_runtime(name)  # a missing package fails here, before seconds of exporting
    cpu = torch.device("cpu")
    model = detector.model.to(cpu).eval()
    export = cached_onnx_export(detector.source, model, detector.cfg, detector.class_names,
                                input_size=detector.input_size)  # fmt: skip
    threads = detector.cfg.engine.get("num_threads") if "engine" in detector.cfg else None
    runtime = runtime_detector(model, str(export.path), backend=name, input_size=detector.input_size, threads=threads)
    logger.info("running %s through %s (%s)", detector.source, runtime.session.version, export.path)
    return replace(detector, model=runtime, device=cpu, amp_dtype=None, backend=name, export=export)
