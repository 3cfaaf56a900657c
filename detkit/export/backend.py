"""``detkit.load(..., backend=...)``: a loaded predictor switched to an inference backend.

The predictor keeps its interface (preprocessing, proposals, result dicts); only its ``model``
becomes a :class:`~detkit.export.runtimes.RuntimeDetector` running the checkpoint's cached ONNX
export (``detkit.export.cache``). The runtimes run on the CPU, so the predictor's device becomes
the CPU and mixed precision is off: the graph is float32, as the PyTorch model on a CPU.
``predictor.export`` (a :class:`~detkit.export.cache.CachedExport`) says which file runs and
whether this load exported it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from detkit.export.cache import cached_onnx_export
from detkit.export.runtimes import import_runtime, resolve_backend, runtime_detector

if TYPE_CHECKING:
    from detkit.api import Predictor

logger = logging.getLogger(__name__)


def use_backend(predictor: Predictor, backend: str) -> Predictor:
    """``predictor`` with its model run by ``backend`` (``torch``, ``onnxruntime``, ``openvino``
    or ``auto``, see ``detkit.export.runtimes``); ``torch`` leaves it as it is."""
    name = resolve_backend(backend, predictor.device)
    predictor.backend = name
    if name == "torch":
        return predictor
    import_runtime(name)  # a missing package fails here, before seconds of exporting
    if not predictor.checkpoint:
        raise ValueError("a runtime backend needs the predictor's checkpoint file (its export is cached beside it)")
    cpu = torch.device("cpu")
    model = predictor.model.to(cpu).eval()
    export = cached_onnx_export(predictor.checkpoint, model, predictor.cfg, predictor.class_names,
                                input_size=predictor.input_size)  # fmt: skip
    threads = predictor.cfg.engine.get("num_threads") if "engine" in predictor.cfg else None
    predictor.model = runtime_detector(model, str(export.path), backend=name, input_size=predictor.input_size,
                                       threads=threads)  # fmt: skip
    predictor.device, predictor.amp_dtype = cpu, None
    predictor.export = export
    logger.info("running %s through %s (%s)", predictor.checkpoint, predictor.model.session.version, export.path)
    return predictor
