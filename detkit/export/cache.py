"""The ONNX export of a checkpoint, built once and kept beside it for the inference runtimes.

``detkit.load(checkpoint, backend="onnxruntime" | "openvino")`` runs the detector's exported graph
(``detkit.export.graphs``), not the PyTorch model. Exporting takes seconds, so the file is kept:
``<checkpoint stem>.<key>.onnx`` in the checkpoint's folder, or, where that folder is not
writable, in detkit's cache folder (``$DETKIT_CACHE/exported`` or ``~/.cache/detkit/exported``).

The key is a hash of everything the graph is made from: the checkpoint's bytes, the resolved
model config (overrides included: thresholds and caps are fixed in the graph; the rest of the
config, such as the batch size or the data's paths, does not change the graph and is left out so
that it does not cost an export), the input size, the cap K, the ONNX opset and the
torch/torchvision versions that trace it. A changed checkpoint or input size gives another key,
hence a new export; the same ones reuse the file. Files of old keys are left in place (another
input size may still use them); delete them freely.

``precision="int8"`` adds a second file beside the first, its INT8 model
(``detkit.export.quantize``): ``<float file's stem>.int8.<key>.onnx``, the key a hash of the float
file's name (hence its key), the quantization settings, the calibration inputs' values and the
quantizer's version. Another calibration set, other settings or a re-exported float graph give
another key, hence a new quantization (tens of seconds); the same ones reuse the file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from omegaconf import DictConfig
from torch import nn

from detkit.data.proposals.cache import hash_file
from detkit.engine.config import config_to_yaml
from detkit.export.exporter import export_model
from detkit.export.graphs import default_max_detections
from detkit.export.quantize import QUANTIZER_VERSION, QuantizationSettings, feeds_digest, quantize_graph
from detkit.export.runtimes import import_runtime
from detkit.export.writers import ONNX_OPSET

logger = logging.getLogger(__name__)

# Bump when the exported graph changes for the same checkpoint, config and versions.
GRAPH_VERSION = 1
# Errors that mean "this folder is not writable here" (shared or read-only checkpoint folders).
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass(frozen=True)
class CachedExport:
    """Where the exported file is, and whether this call built it (False: reused)."""

    path: Path
    built: bool


def cache_dir() -> Path:
    """``$DETKIT_CACHE/exported`` when DETKIT_CACHE is set, else ``~/.cache/detkit/exported``."""
    cache = os.environ.get("DETKIT_CACHE")
    return (Path(cache) if cache else Path.home() / ".cache" / "detkit") / "exported"


def digest_of(*parts: str) -> str:
    """16 hex digits over ``parts`` (each ended by a NUL byte, so that no two lists collide)."""
    digest = hashlib.blake2b(digest_size=8)
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def export_key(checkpoint: str | os.PathLike, cfg: DictConfig, *, input_size: int, max_detections: int) -> str:
    """16 hex digits naming one exported graph of ``checkpoint`` (see the module docstring)."""
    return digest_of(
        hash_file(checkpoint),
        config_to_yaml(cfg.model),
        f"input_size={input_size}",
        f"max_detections={max_detections}",
        f"opset={ONNX_OPSET}",
        f"graph={GRAPH_VERSION}",
        f"torch={torch.__version__}",
        f"torchvision={torchvision.__version__}",
    )


def cached_onnx_export(
    checkpoint: str | os.PathLike, model: nn.Module, cfg: DictConfig, class_names: list[str], *, input_size: int
) -> CachedExport:
    """The ONNX file of ``model`` (loaded from ``checkpoint`` with ``cfg``) at ``input_size``,
    exported now when no file of its key exists beside the checkpoint or in the cache folder."""
    checkpoint = Path(checkpoint)
    max_detections = default_max_detections(model)
    name = f"{checkpoint.stem}.{export_key(checkpoint, cfg, input_size=input_size, max_detections=max_detections)}.onnx"

    def write(path: Path) -> None:
        export_model(model, format="onnx", output=path, input_size=input_size, class_names=class_names,
                     max_detections=max_detections, check=False)  # fmt: skip

    return cached_file(checkpoint, name, write, what="ONNX export")


def int8_key(export: CachedExport, settings: QuantizationSettings, calibration: str) -> str:
    """16 hex digits naming one INT8 model of the float32 ``export``: its file (whose name holds
    its own key), the quantization ``settings``, the calibration inputs' identity
    (``feeds_digest``), and the quantizer's version (another ONNX Runtime may place or round
    differently)."""
    return digest_of(
        export.path.name,
        settings.key(),
        f"calibration={calibration}",
        f"quantizer={QUANTIZER_VERSION}",
        f"onnxruntime={import_runtime('onnxruntime').__version__}",
    )


def cached_int8_export(
    checkpoint: str | os.PathLike,
    export: CachedExport,
    feeds: Sequence[dict[str, np.ndarray]],
    settings: QuantizationSettings,
) -> CachedExport:
    """The INT8 (QDQ) model of ``checkpoint``'s float32 ``export``, calibrated on ``feeds``
    (``detkit.export.quantize.calibration_feeds``): ``<float file's stem>.int8.<key>.onnx`` beside
    it (or in the cache folder), quantized now when no file of its key exists. The key changes with
    the float graph, the settings and the calibration inputs' values."""
    key = int8_key(export, settings, feeds_digest(feeds))
    name = f"{export.path.stem}.int8.{key}.onnx"

    def write(path: Path) -> None:
        quantize_graph(export.path, path, feeds, settings)

    return cached_file(checkpoint, name, write, what="INT8 model")


def cached_file(checkpoint: Path, name: str, write: Callable[[Path], None], *, what: str) -> CachedExport:
    """``name`` beside ``checkpoint`` or in the cache folder, where it exists; else written by
    ``write(path)`` into the first of the two that is writable."""
    folders = [Path(checkpoint).resolve().parent, cache_dir()]
    for folder in folders:
        if (folder / name).is_file():
            logger.info("reusing the %s %s", what, folder / name)
            return CachedExport(folder / name, built=False)
    errors = []
    for folder in folders:
        path = folder / name
        # A temporary name, then an atomic rename: a reader never sees half a file, and two
        # processes writing at once both end with a whole one.
        partial = folder / f".{name}.{os.getpid()}.partial"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            partial.touch()  # fails here, with an OSError, where the folder is not writable
        except OSError as error:
            if error.errno not in UNWRITABLE:
                raise
            errors.append(f"{folder}: {error.strerror or error}")  # a read-only folder: try the next one
            continue
        try:
            write(partial)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        logger.info("wrote the %s of %s to %s for the inference runtime", what, checkpoint, path)
        return CachedExport(path, built=True)
    raise PermissionError(f"cannot write the {what} of {checkpoint} anywhere: " + "; ".join(errors))
