"""Write a detection graph to a file: ONNX, TorchScript (traced) or torch.export's ``.pt2``.

Every writer traces the graph on sample inputs with the batch size (and, for proposals, their
number per image) marked dynamic, and stores ``metadata`` (input size, class names, the input
and output layout) in the file: ONNX ``metadata_props`` under the key ``detkit``, the TorchScript
archive's and the ``.pt2`` archive's extra file ``detkit.json``.

``.pt2`` (torch.export) is optional: it fails for SSD, whose default boxes span an image extent
read from tensor values (``SSDHead.priors``), which torch.export cannot specialise.

ONNX goes through the TorchScript-based exporter (``dynamo=False``): it is the one that turns
torchvision's ``nms``, ``roi_align`` and ``roi_pool`` into ONNX ``NonMaxSuppression``,
``RoiAlign`` and ``MaxRoiPool`` (opset 16+ for the half-pixel ``RoiAlign`` of ``aligned=True``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

from detkit.export.graphs import OUTPUTS, DetectionGraph

ONNX_OPSET = 17
METADATA_KEY = "detkit"
METADATA_FILE = "detkit.json"
# Names of the dynamic dimensions of each input and output.
DYNAMIC_AXES = {
    "images": {0: "batch"},
    "proposals": {0: "batch", 1: "proposals"},
    "num_proposals": {0: "batch"},
    **{name: {0: "batch"} for name in OUTPUTS},
}


@contextlib.contextmanager
def quiet_tracing() -> Iterator[None]:
    """Hide the warnings that every trace, save and load of these graphs gives and that say
    nothing about this one: Python values frozen at the fixed input size (by design), and the
    deprecation notices of TorchScript and of the TorchScript-based ONNX exporter (docs/EXPORT.md
    says where each format stands)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def write_onnx(
    graph: DetectionGraph, inputs: Sequence[Tensor], path: Path, metadata: dict, opset: int = ONNX_OPSET
) -> None:
    try:
        import onnx
    except ImportError as error:
        raise ImportError("ONNX export needs the onnx package: pip install 'detkit[export]'") from error
    if opset < 16:
        raise ValueError(f"ONNX export needs opset 16 or newer (RoiAlign with half-pixel centres), got {opset}")
    names = list(graph.input_names)
    options = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with quiet_tracing():
        torch.onnx.export(
            graph,
            tuple(inputs),
            str(path),
            opset_version=opset,
            input_names=names,
            output_names=list(OUTPUTS),
            dynamic_axes={name: DYNAMIC_AXES[name] for name in names + list(OUTPUTS)},
            do_constant_folding=True,
            **options,
        )
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_torchscript(
    graph: DetectionGraph, inputs: Sequence[Tensor], path: Path, metadata: dict, opset: int = 0
) -> None:
    # Traced: the graphs have no control flow on values left, and a trace keeps the shapes it
    # reads from tensors symbolic, so the batch (and the proposals) stay dynamic.
    with quiet_tracing():
        traced = torch.jit.trace(graph, tuple(inputs), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})


def write_pt2(graph: DetectionGraph, inputs: Sequence[Tensor], path: Path, metadata: dict, opset: int = 0) -> None:
    batch = torch.export.Dim("batch", min=1)
    dims = {
        "images": {0: batch},
        "proposals": {0: batch, 1: torch.export.Dim("proposals", min=1)},
        "num_proposals": {0: batch},
    }
    try:
        with quiet_tracing():
            program = torch.export.export(
                graph, tuple(inputs), dynamic_shapes={name: dims[name] for name in graph.input_names}
            )
    except Exception as error:  # torch.export fails in many ways; .pt2 is the optional format
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RuntimeError(
            f"torch.export cannot export {type(graph.detector).__name__} ({type(error).__name__}: {reason}). "
            "The .pt2 format is optional: use format=onnx or format=torchscript"
        ) from error
    torch.export.save(program, str(path), extra_files={METADATA_FILE: json.dumps(metadata)})


WRITERS: dict[str, Callable[..., None]] = {"onnx": write_onnx, "torchscript": write_torchscript, "pt2": write_pt2}
EXPORT_FORMATS = tuple(WRITERS)
DEFAULT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2"}
