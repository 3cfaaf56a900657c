"""Inference backends: a detector's exported ONNX graph run by ONNX Runtime or OpenVINO, wrapped to
behave like the PyTorch model in ``eval()`` mode (images in, one detections dict per image out).

``detkit.load(checkpoint, backend=...)`` puts a :class:`RuntimeDetector` where the predictor's
model was; ``Predictor.__call__``, ``detkit predict`` and the evaluation loop call it as they
call the model. The graph (``detkit.export.graphs``) holds the normalisation, decoding, NMS and
the cap, so the runtimes see the same letterboxed images as the model, and the detectors that
score proposals (Fast R-CNN, SPP-net, R-CNN) get them as its ``proposals`` / ``num_proposals``
inputs. The file comes from ``detkit.export.cache`` (exported once per checkpoint and input size).

Backends: ``torch`` (the model itself), ``onnxruntime`` (the ``export`` extra), ``openvino``
(the ``openvino`` extra) and ``auto``: on a GPU the model itself; on a CPU the first installed
of ``AUTO_CPU_ORDER``, fastest first as measured on the CPU of docs/EXPORT.md.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from detkit.export.graphs import OUTPUTS, PROPOSAL_INPUTS
from detkit.export.samples import padded_proposals
from detkit.ops.pixels import to_unit_float
from detkit.structures import Detections, Target

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "openvino", "auto")
# The modules each runtime backend needs (onnx writes the graph it runs; the runtime last) and the
# detkit extra that installs them.
RUNTIME_PACKAGES = {"onnxruntime": (("onnx", "onnxruntime"), "export"), "openvino": (("onnx", "openvino"), "openvino")}
# What ``auto`` picks on a CPU, first installed wins: OpenVINO ran the exported graphs fastest,
# then ONNX Runtime, both ahead of PyTorch (docs/EXPORT.md, "Running on the CPU through a runtime").
AUTO_CPU_ORDER = ("openvino", "onnxruntime")


class BackendNotInstalledError(ImportError):
    """A runtime backend was asked for whose package is not installed."""


def import_runtime(backend: str):
    """The runtime's Python module, or a one-line error naming the extra that installs it."""
    modules, extra = RUNTIME_PACKAGES[backend]
    for module in modules:
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            raise BackendNotInstalledError(
                f"backend={backend} needs the {module} package, which is not installed: pip install \"detkit[{extra}]\""
            ) from error
    return imported


def is_installed(backend: str) -> bool:
    try:
        import_runtime(backend)
    except BackendNotInstalledError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """``backend`` checked, and ``auto`` turned into the backend it stands for on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if device.type != "cpu":
        return "torch"  # the runtimes here run on the CPU; a GPU runs the model itself faster
    return next((name for name in AUTO_CPU_ORDER if is_installed(name)), "torch")


class OnnxRuntimeSession:
    """An ONNX Runtime CPU session with every graph optimisation on."""

    def __init__(self, path: str, *, threads: int | None = None) -> None:
        onnxruntime = import_runtime("onnxruntime")
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # 0: ONNX Runtime's default, one thread per physical core (as torch's default).
        options.intra_op_num_threads = int(threads or 0)
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = tuple(node.name for node in self.session.get_inputs())
        self.version = f"onnxruntime {onnxruntime.__version__}"

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(list(OUTPUTS), feed)


class OpenVINOSession:
    """An OpenVINO model compiled for the CPU, for latency (all cores on one request), float32.

    OpenVINO's CPU plugin would run in bf16 on CPUs that have it by default; float32 keeps the
    detections those of the PyTorch model (the tolerances of docs/EXPORT.md).

    A quantized model (``FakeQuantize`` operations: an INT8 QDQ file of ``detkit.export.quantize``)
    is compiled once per batch size, with the batch fixed: compiled with a dynamic batch, OpenVINO
    2026.4 computed scores that differed from the QDQ model's own arithmetic (ONNX Runtime's, and
    OpenVINO's at a fixed batch) by several quantization steps on some detectors (measured on an
    R-FCN: mean score-map difference 1.1 for a range of 74, against 2e-5 with the batch fixed).
    """

    def __init__(self, path: str, *, threads: int | None = None) -> None:
        openvino = import_runtime("openvino")
        self.path = path
        self.core = openvino.Core()
        self.model = self.core.read_model(path)
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.quantized = any(op.get_type_name() == "FakeQuantize" for op in self.model.get_ops())
        self.compiled_by_batch: dict[int | None, tuple] = {}
        self.input_names = self._compiled(None)[2] if not self.quantized else self._graph_input_names()
        self.version = f"openvino {openvino.__version__}"

    def _graph_input_names(self) -> tuple[str, ...]:
        return tuple(name for name in PROPOSAL_INPUTS if any(name in port.get_names() for port in self.model.inputs))

    def _port_name(self, port) -> str:
        # A port answers to several names after OpenVINO's import (the ONNX input's and those of
        # the nodes folded into it); keep the graph's own (``detkit.export.graphs``).
        known = [name for name in PROPOSAL_INPUTS if name in port.get_names()]
        if len(known) != 1:
            raise ValueError(f"{self.path}: input {sorted(port.get_names())} is none of {', '.join(PROPOSAL_INPUTS)}")
        return known[0]

    def _compiled(self, batch: int | None) -> tuple:
        """``(infer request, {input name: port}, input names, output ports)`` of the model
        compiled for ``batch`` images (None: any batch), compiled on first use."""
        if batch not in self.compiled_by_batch:
            model = self.model
            if batch is not None:
                model = self.model.clone()
                # Only the batch is fixed; the proposals' count P stays dynamic.
                model.reshape({port: [batch, *port.get_partial_shape()[1:]] for port in model.inputs})
            compiled = self.core.compile_model(model, "CPU", self.config)
            inputs = {self._port_name(port): port for port in compiled.inputs}
            names = tuple(name for name in PROPOSAL_INPUTS if name in inputs)
            outputs = [compiled.output(name) for name in OUTPUTS]
            self.compiled_by_batch[batch] = (compiled.create_infer_request(), inputs, names, outputs)
        return self.compiled_by_batch[batch]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        request, inputs, _, outputs = self._compiled(len(feed["images"]) if self.quantized else None)
        results = request.infer({inputs[name]: value for name, value in feed.items()})
        # Copies: the request reuses its output buffers on the next call.
        return [np.array(results[port]) for port in outputs]


SESSIONS = {"onnxruntime": OnnxRuntimeSession, "openvino": OpenVINOSession}


class RuntimeDetector(nn.Module):
    """``detector``'s exported graph run by a runtime session, called as the detector in
    ``eval()`` mode: ``images`` (``Tensor[B, 3, S, S]`` uint8 or float in [0, 1], or a list of
    ``Tensor[3, S, S]``, letterboxed to the graph's S) and, for the proposal-scoring detectors,
    ``targets`` with ``proposals: Tensor[P_i, 4] xyxy`` → one ``{"boxes", "scores", "labels"}``
    per image on the CPU, boxes in input pixels. The detector stays a submodule so that
    what callers read from the model (its kind, ``single_object``) is still there; it does not run."""

    def __init__(self, detector: nn.Module, session, *, backend: str, input_size: int, path: str = "") -> None:
        super().__init__()
        self.detector = detector.eval()
        self.session = session
        self.backend = backend
        self.input_size = int(input_size)
        self.path = path
        self.takes_proposals = tuple(session.input_names) == PROPOSAL_INPUTS

    def extra_repr(self) -> str:
        return f"backend={self.session.version}, input_size={self.input_size}, file={self.path}"

    @torch.no_grad()
    def forward(self, images: Tensor | Sequence[Tensor], targets: Sequence[Target] | None = None) -> list[Detections]:
        batch = to_unit_float(images if torch.is_tensor(images) else torch.stack(list(images))).float()
        size = self.input_size
        if batch.dim() != 4 or tuple(batch.shape[1:]) != (3, size, size):
            raise ValueError(
                f"the exported graph takes images [B, 3, {size}, {size}] letterboxed to {size} px; "
                f"got {tuple(batch.shape)}"
            )
        feed = {"images": np.ascontiguousarray(batch.cpu().numpy())}
        if self.takes_proposals:
            if targets is None or any("proposals" not in target for target in targets):
                raise ValueError(f"{type(self.detector).__name__} scores proposals: pass targets with 'proposals'")
            boxes, counts = padded_proposals([target["proposals"].detach().cpu() for target in targets])
            feed["proposals"], feed["num_proposals"] = boxes.numpy(), counts.numpy()
        boxes, scores, labels, counts = self.session.run(feed)
        return [
            {
                "boxes": torch.from_numpy(np.ascontiguousarray(boxes[index, :count], np.float32)),
                "scores": torch.from_numpy(np.ascontiguousarray(scores[index, :count], np.float32)),
                "labels": torch.from_numpy(np.ascontiguousarray(labels[index, :count], np.int64)),
            }
            for index, count in enumerate(int(c) for c in counts)
        ]


def runtime_detector(
    detector: nn.Module, path: str, *, backend: str, input_size: int, threads: int | None = None
) -> RuntimeDetector:
    """``detector`` run by ``backend`` (``onnxruntime`` or ``openvino``) from its ONNX file ``path``."""
    if backend not in SESSIONS:
        raise ValueError(f"{backend!r} is not a runtime backend; choose one of {', '.join(SESSIONS)}")
    import_runtime(backend)  # a missing package is reported as such, not as a file the runtime cannot read
    try:
        session = SESSIONS[backend](str(path), threads=threads)
    except Exception as error:  # each runtime has its own exception types for an unreadable model
        reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
        raise RuntimeError(
            f"{backend} cannot load {path} ({reason}); delete the file to have detkit export the checkpoint again"
        ) from error
    return RuntimeDetector(detector, session, backend=backend, input_size=input_size, path=str(path))
