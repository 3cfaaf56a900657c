"""INT8 post-training quantization of an exported detector graph (``detkit.export.graphs``).

The float32 ONNX file becomes a QDQ model (``QuantizeLinear`` / ``DequantizeLinear`` pairs around
the quantized operators, the format ONNX Runtime's tools recommend for CPUs), written by ONNX
Runtime's ``quantize_static``: ONNX Runtime and OpenVINO both read it and run the quantized
operators as integer kernels (VNNI dot products where the CPU has them). What is quantized:

- the compute operators, ``Conv``, ``MatMul`` and ``Gemm``: weights per output channel (int8,
  symmetric), input activations per tensor (uint8 over the calibrated range), and the output,
  once, after the ReLU or ReLU6 that follows where one does (``FUSED_ACTIVATIONS``): over the
  activation's [0, max] the uint8 steps are half as coarse as over the convolution's signed
  range, the activation disappears into the quantization, and ONNX Runtime gets the
  quantized-in, quantized-out pattern it runs as one integer convolution (quantizing the inputs
  alone ran slower through both runtimes, timed in turns in one process on a shared 2-core box);
- not the prediction layers (``prediction_layers``): the last compute operators before the
  outputs (the class and box predictors, the RPN's objectness and deltas, R-FCN's score maps),
  whose outputs become scores and boxes directly; they are a small share of the work;
- nothing of the postprocessing: box decoding, ``TopK``, ``NonMaxSuppression``, RoI pooling and
  the cap stay float32 (only the nodes named above are given to the quantizer).

Calibration runs the float graph on a few real inputs (``calibration_feeds``: letterboxed images
in [0, 1] as evaluation prepares them, and the proposals for the detectors that score them) and
records each quantized tensor's range (``QuantizationSettings.method``).

Measured on six trained checkpoints (docs/EXPORT.md, "INT8 on the CPU runtimes"): with these
defaults the INT8 model's COCO AP was within 0.011 of the float model's. On the default R-FCN,
MinMax, percentile and entropy calibration, 8 or 32 images, symmetric activations and quantized
prediction layers all gave AP 0.659-0.664 (float32 0.662); on EfficientNet-Lite0 detectors the
depthwise convolutions were the sensitive layers (``float_depthwise``). What mattered most was
OpenVINO's dynamic batch (``detkit.export.runtimes.OpenVINOSession``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import logging
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from detkit.export.runtimes import BackendNotInstalledError
from detkit.export.samples import padded_proposals
from detkit.ops.pixels import to_unit_float

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8")
# Bump when quantize_graph writes another model for the same graph, settings and calibration.
QUANTIZER_VERSION = 1

# The operators that carry the arithmetic; the rest of a detector graph is data movement and
# postprocessing, which INT8 would not speed up and could only make less exact.
COMPUTE_OPS = ("Conv", "MatMul", "Gemm")
# Activations that the quantizer folds into the compute operator before them: its output is
# quantized once, over the activation's range (ReLU's [0, max] rather than the convolution's
# signed one: twice the resolution), and the activation itself disappears (uint8 saturation at
# the zero point is ReLU; at the range's top, ReLU6's clip).
FUSED_ACTIVATIONS = ("Relu", "Clip")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
# Inputs of an operator that carry coordinates, indices or shapes rather than feature values: a
# path through them does not make a compute operator "feed" another (the RPN's boxes only say
# where RoI pooling reads, not what it reads). Unlisted operators: every input carries values.
VALUE_INPUTS = {
    "RoiAlign": (0,),
    "MaxRoiPool": (0,),
    "Gather": (0,),
    "GatherElements": (0,),
    "GatherND": (0,),
    "ScatterND": (0, 2),
    "ScatterElements": (0, 2),
    "Slice": (0,),
    "Reshape": (0,),
    "Expand": (0,),
    "Tile": (0,),
    "Where": (1, 2),
}
# Operators whose outputs are indices, masks or shapes, never feature values.
INDEX_OPS = {
    "NonMaxSuppression", "NonZero", "Shape", "Size", "ArgMax", "ArgMin", "Equal", "Less", "LessOrEqual",
    "Greater", "GreaterOrEqual", "And", "Or", "Not", "Xor", "ConstantOfShape", "Range",
}  # fmt: skip


@dataclass(frozen=True)
class QuantizationSettings:
    """How a graph is quantized; every field is part of the cached file's key.

    ``num_images``: calibration images (the first ones of the source). ``method``: how an
    activation's range comes from the calibration values: ``minmax`` (the extremes seen),
    ``percentile`` (the ``percentile``-th of the absolute values: clips rare outliers) or
    ``entropy`` (the range that keeps the histogram's KL divergence smallest).
    ``symmetric_activations``: a zero point of 0 for every activation (int8 activations)
    rather than uint8 over the calibrated range. ``float_heads``: keep the prediction layers
    (``prediction_layers``) in float32. ``float_depthwise``: keep the depthwise convolutions
    (``depthwise_convolutions``) in float32 too: on EfficientNet-Lite0 detectors that recovered
    the last 0.01 of COCO AP that INT8 cost, and lost about a quarter of the INT8 speed-up
    (OpenVINO, SSD at 320 px, timed in turns in one process on a shared 2-core box).
    """

    num_images: int = 32
    method: str = "percentile"
    percentile: float = 99.999
    symmetric_activations: bool = False
    float_heads: bool = True
    float_depthwise: bool = False

    def __post_init__(self) -> None:
        if self.method not in CALIBRATION_METHODS:
            choices = ", ".join(CALIBRATION_METHODS)
            raise ValueError(f"unknown calibration method {self.method!r}; choose one of {choices}")
        if self.num_images < 1:
            raise ValueError(f"num_images must be at least 1, got {self.num_images}")

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


class FeedReader:
    """ONNX Runtime's calibration data reader over prepared input dicts: ``get_next`` the next
    one, ``set_range`` to read a slice of them (the quantizer's ``CalibStridedMinMax``)."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self.feeds = list(feeds)
        self.iterator: Iterator[dict[str, np.ndarray]] = iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.iterator, None)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.iterator = iter(self.feeds[start_index:end_index])


def import_quantizer():
    """ONNX Runtime's quantization tools (``onnxruntime.quantization``; onnx to read and write the
    models), or a one-line error naming the extra that installs them: OpenVINO runs INT8 models,
    but ONNX Runtime's tools write them."""
    for module in ("onnx", "onnxruntime", "onnxruntime.quantization"):
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            raise BackendNotInstalledError(
                f"precision=int8 needs the {module.split('.')[0]} package (ONNX Runtime's quantization tools write the "
                'INT8 model), which is not installed: pip install "detkit[export]"'
            ) from error
    return imported


def calibration_feeds(
    images: Sequence[Tensor], proposals: Sequence[Tensor] | None = None, *, batch_size: int = 8
) -> list[dict[str, np.ndarray]]:
    """The graph's inputs for calibration, in batches of ``batch_size``: ``images`` are
    ``Tensor[3, S, S]`` (uint8, or float in [0, 1]) letterboxed to the graph's S; ``proposals``,
    for the graphs that take them, one ``Tensor[P_i, 4]`` xyxy (input pixels) per image."""
    if proposals is not None and len(proposals) != len(images):
        raise ValueError(f"got {len(images)} calibration images but {len(proposals)} proposal sets")
    feeds = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([to_unit_float(image).float() for image in images[start : start + batch_size]])
        feed = {"images": np.ascontiguousarray(batch.numpy())}
        if proposals is not None:
            boxes, counts = padded_proposals(list(proposals[start : start + batch_size]))
            feed["proposals"], feed["num_proposals"] = boxes.numpy(), counts.numpy()
        feeds.append(feed)
    return feeds


def feeds_digest(feeds: Sequence[dict[str, np.ndarray]]) -> str:
    """A hash of the calibration inputs' values and shapes: the identity of the calibration set."""
    digest = hashlib.blake2b(digest_size=8)
    for feed in feeds:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def prediction_layers(model) -> list[str]:
    """Names of the compute nodes (``COMPUTE_OPS``) of ``model`` (an ``onnx.ModelProto``) whose
    values reach no other compute node: the layers that predict scores and boxes.

    Values flow through every operator's value inputs (``VALUE_INPUTS``) and stop at the
    operators that produce indices, masks or shapes (``INDEX_OPS``, ``TopK``'s indices): the RPN's
    deltas become boxes that tell RoI pooling where to read (its ``rois`` input), not values that
    the box head computes with, so the RPN's predictors count as prediction layers too.
    """
    consumers: dict[str, list[tuple[object, int]]] = {}
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name:
                consumers.setdefault(name, []).append((node, index))

    def value_outputs(node) -> list[str]:
        if node.op_type in INDEX_OPS:
            return []
        if node.op_type == "TopK":
            return list(node.output[:1])
        return list(node.output)

    found = []
    for start in model.graph.node:
        if start.op_type not in COMPUTE_OPS:
            continue
        pending, seen, feeds_compute = list(start.output), set(), False
        while pending and not feeds_compute:
            tensor = pending.pop()
            for node, index in consumers.get(tensor, ()):
                if index not in VALUE_INPUTS.get(node.op_type, (index,)) or id(node) in seen:
                    continue
                if node.op_type in COMPUTE_OPS:
                    feeds_compute = True
                    break
                seen.add(id(node))
                pending.extend(value_outputs(node))
        if not feeds_compute:
            found.append(start.name)
    return found


def depthwise_convolutions(model) -> list[str]:
    """Names of the depthwise ``Conv`` nodes of ``model``: one group per input channel (weights
    ``[C, 1, k, k]``, more than one group)."""
    shapes = {tensor.name: tuple(tensor.dims) for tensor in model.graph.initializer}
    found = []
    for node in model.graph.node:
        groups = next((attribute.i for attribute in node.attribute if attribute.name == "group"), 1)
        weight = shapes.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if groups > 1 and weight is not None and len(weight) == 4 and weight[1] == 1:
            found.append(node.name)
    return found


def nodes_to_quantize(model, kept: Sequence[str]) -> list[str]:
    """The compute nodes of ``model`` not in ``kept``, and each activation (``FUSED_ACTIVATIONS``)
    that is the only consumer of one of their outputs."""
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    chosen = []
    for node in model.graph.node:
        if node.op_type in COMPUTE_OPS and node.name not in kept:
            chosen.append(node.name)
            after = consumers.get(node.output[0], [])
            if len(after) == 1 and after[0].op_type in FUSED_ACTIVATIONS:
                chosen.append(after[0].name)
    return chosen


def quantize_graph(
    source: str | Path,
    output: str | Path,
    feeds: Sequence[dict[str, np.ndarray]],
    settings: QuantizationSettings = QuantizationSettings(),
) -> dict:
    """Write the INT8 (QDQ) model of the float32 graph ``source`` to ``output``, calibrated on
    ``feeds`` (``calibration_feeds``). Returns what was done: the quantized and the float
    compute nodes, the settings. The ``detkit`` metadata of ``source`` is kept, with the
    precision and the settings added."""
    import_quantizer()
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, output = Path(source), Path(output)
    with tempfile.TemporaryDirectory() as folder:
        # Shape inference and ONNX Runtime's basic graph optimisations first, as the quantizer
        # asks: it needs every tensor's type and rank, and folded constants give fewer tensors to
        # calibrate. Symbolic shape inference does not know every operator of these graphs
        # (MaxRoiPool, NonMaxSuppression), and ONNX's own inference suffices for the compute ops.
        prepared = Path(folder) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        compute = [node.name for node in model.graph.node if node.op_type in COMPUTE_OPS]
        kept = prediction_layers(model) if settings.float_heads else []
        kept += depthwise_convolutions(model) if settings.float_depthwise else []
        chosen = nodes_to_quantize(model, kept)
        if not chosen:
            # An empty list would mean "no restriction" to the quantizer: every operator of the types.
            raise ValueError(f"{source}: no compute operator to quantize outside the prediction layers {kept}")
        methods = {
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }
        # The calibrators print their progress; keep it out of the user's console (debug log).
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            quantize_static(
                str(prepared),
                str(output),
                FeedReader(feeds),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=[*COMPUTE_OPS, *FUSED_ACTIVATIONS],
                nodes_to_quantize=chosen,
                per_channel=True,
                reduce_range=False,  # VNNI and AVX-512 accumulate 8-bit products without saturating
                activation_type=QuantType.QInt8 if settings.symmetric_activations else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=methods[settings.method],
                extra_options={
                    "ActivationSymmetric": settings.symmetric_activations,
                    "WeightSymmetric": True,
                    "CalibTensorRangeSymmetric": settings.symmetric_activations,
                    "CalibPercentile": settings.percentile,
                    # One batch of inputs at a time: the histogram calibrators stack a tensor's values
                    # over every batch they are given at once, which fails where the shapes differ
                    # (the RoI heads' inputs: one row per proposal, a number that varies with the
                    # image), and it keeps one batch's intermediate tensors in memory, not all.
                    "CalibStridedMinMax": 1,
                },
            )
        logger.debug("quantizer output: %s", printed.getvalue().strip())
    quantized = onnx.load(str(output))
    report = {
        "precision": "int8",
        "settings": asdict(settings),
        "quantized_nodes": [name for name in compute if name not in kept],
        "float_nodes": kept,
        "calibration_batches": len(feeds),
        "calibration_images": int(sum(len(feed["images"]) for feed in feeds)),
    }
    metadata = {prop.key: prop.value for prop in onnx.load(str(source), load_external_data=False).metadata_props}
    info = json.loads(metadata.get("detkit", "{}"))
    info["precision"] = "int8"
    info["quantization"] = {key: report[key] for key in ("settings", "calibration_images", "float_nodes")}
    del quantized.metadata_props[:]
    for key, value in {**metadata, "detkit": json.dumps(info)}.items():
        quantized.metadata_props.add(key=key, value=value)
    onnx.save(quantized, str(output))
    return report
