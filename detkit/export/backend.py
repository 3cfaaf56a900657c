"""``detkit.load(..., backend=..., precision=...)``: a loaded detector switched to an inference backend.

The predictor built on it keeps its interface (preprocessing, proposals, result dicts); only its
``model`` becomes a :class:`~detkit.export.runtimes.RuntimeDetector` running the checkpoint's cached ONNX
export (``detkit.export.cache``). The runtimes run on the CPU, so the predictor's device becomes
the CPU and mixed precision is off: the graph is float32, as the PyTorch model on a CPU.
``detector.export`` (a :class:`~detkit.export.cache.CachedExport`) says which file runs and
whether this load exported it.

``precision="int8"`` runs the float32 export's INT8 model instead (``detkit.export.quantize``),
calibrated on the first images of the checkpoint's data or on ``calibration`` and cached beside
the float file; only the runtimes run it, so ``backend="torch"`` (and ``auto`` where it picks
torch, on a GPU) refuses it.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import torch

from detkit.data.proposals.cache import config_proposal_cache
from detkit.export.cache import CachedExport, cached_int8_export, cached_onnx_export
from detkit.export.calibration import CalibrationSource, calibration_images, data_image_files, source_image_files
from detkit.export.quantize import PRECISIONS, QuantizationSettings, calibration_feeds, import_quantizer
from detkit.export.runtimes import import_runtime, resolve_backend, runtime_detector
from detkit.proposals.precomputed import needs_precomputed_proposals

if TYPE_CHECKING:
    from detkit.engine.loading import LoadedDetector

logger = logging.getLogger(__name__)


def check_precision(precision: str, backend: str, device: torch.device) -> None:
    """A one-line error for a precision that ``backend`` (as given; ``auto`` resolved on
    ``device``) cannot run: INT8 is a runtime's, never PyTorch's."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and resolve_backend(backend, device) == "torch":
        why = (
            "backend=torch runs the PyTorch model, in float32"
            if backend == "torch"
            else (f"backend=auto picks the PyTorch model here (device {device.type}; the runtimes run on the CPU)")
        )
        raise ValueError(
            f"precision=int8 runs the exported graph through onnxruntime or openvino on the CPU, and {why}: "
            "choose backend=openvino or backend=onnxruntime (device=cpu)"
        )


def run_with_backend(
    detector: LoadedDetector,
    backend: str,
    *,
    precision: str = "fp32",
    calibration: CalibrationSource | None = None,
    settings: QuantizationSettings | None = None,
) -> LoadedDetector:
    """``detector`` with its model run by ``backend`` (``torch``, ``onnxruntime``, ``openvino``
    or ``auto``, see ``detkit.export.runtimes``) at ``precision`` (``fp32``, or ``int8`` for the
    runtimes); ``torch`` leaves it as it is. ``calibration`` (INT8 only): a folder of images or
    image files (default: the checkpoint's data, ``detkit.export.calibration``); ``settings``:
    how to quantize (default ``QuantizationSettings()``)."""
    check_precision(precision, backend, detector.device)
    name = resolve_backend(backend, detector.device)
    if name == "torch":
        return replace(detector, backend=name)
    import_runtime(name)  # a missing package fails here, before seconds of exporting
    if precision == "int8":
        import_quantizer()
    cpu = torch.device("cpu")
    model = detector.model.to(cpu).eval()
    export = cached_onnx_export(detector.source, model, detector.cfg, detector.class_names,
                                input_size=detector.input_size)  # fmt: skip
    if precision == "int8":
        export = int8_export(detector, export, calibration, settings or QuantizationSettings())
    threads = detector.cfg.engine.get("num_threads") if "engine" in detector.cfg else None
    runtime = runtime_detector(model, str(export.path), backend=name, input_size=detector.input_size, threads=threads)
    logger.info("running %s through %s at %s (%s)", detector.source, runtime.session.version, precision, export.path)
    return replace(detector, model=runtime, device=cpu, amp_dtype=None, backend=name, precision=precision,
                   export=export)  # fmt: skip


def int8_export(
    detector: LoadedDetector,
    export: CachedExport,
    calibration: CalibrationSource | None,
    settings: QuantizationSettings,
) -> CachedExport:
    """The cached INT8 model of ``export``, calibrated on ``settings.num_images`` images of
    ``calibration`` (or of the checkpoint's data) prepared as evaluation prepares them. The images
    are read on every load: their values are part of the cached file's key."""
    count = settings.num_images
    files = data_image_files(detector.cfg, count) if calibration is None else source_image_files(calibration, count)
    cache = config_proposal_cache(detector.cfg) if needs_precomputed_proposals(detector.model) else None
    images, proposals = calibration_images(files, detector.input_size, cache)
    feeds = calibration_feeds(images, proposals)
    return cached_int8_export(detector.source, export, feeds, settings)
