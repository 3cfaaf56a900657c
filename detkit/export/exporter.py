"""Export a detector (or a checkpoint) for deployment, then check the file against PyTorch.

    from detkit.export import export_checkpoint, format_report
    report = export_checkpoint("outputs/.../best.pt", format="onnx")
    print(format_report(report))

The exported graph holds the whole detector: normalisation, network, box decoding, NMS and the
cap of ``max_detections`` per image (layout: ``detkit.export.graphs``). After writing, the file
runs on sample images with its own runtime and its detections are compared with the PyTorch
model's: the report holds the largest box and score differences and whether the counts agree.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from detkit.engine.build import build_dataset
from detkit.engine.build import input_size as config_input_size
from detkit.engine.loading import load_detector
from detkit.export.check import (
    BOX_TOLERANCE,
    SCORE_TOLERANCE,
    compare_detections,
    graph_inputs,
    reference_outputs,
    run_exported,
)
from detkit.export.graphs import OUTPUTS, PROPOSAL_INPUTS, detection_graph
from detkit.export.samples import SampleSource, prepare_samples, search_proposals
from detkit.export.writers import DEFAULT_SUFFIXES, EXPORT_FORMATS, ONNX_OPSET, WRITERS
from detkit.ops.pixels import to_unit_float

logger = logging.getLogger(__name__)


def export_model(
    model: nn.Module,
    *,
    format: str,
    output: str | Path,
    input_size: int,
    max_detections: int | None = None,
    sample_images: Sequence[SampleSource] | Tensor | None = None,
    sample_proposals: Sequence[Tensor] | None = None,
    num_samples: int = 3,
    class_names: Sequence[str] = (),
    opset: int = ONNX_OPSET,
    check: bool = True,
) -> dict:
    """Write ``model`` (a detkit detector) as ``format`` (``onnx``, ``torchscript`` or ``pt2``) to
    ``output`` for ``input_size`` × ``input_size`` inputs and at most ``max_detections`` per image
    (default: the detector's own cap), then, with ``check``, run the file and compare.

    ``sample_images``: image files, RGB uint8 ``[H, W, 3]`` arrays (both letterboxed here) or
    ``Tensor[3, S, S]`` in [0, 1]; None draws ``num_samples`` synthetic shapes images. The trace
    sees the first two, the check all of them (three or more also exercise the dynamic batch).
    ``sample_proposals``: one ``Tensor[P_i, 4] xyxy`` per image for the detectors that take
    proposals (default: selective search on each sample). Returns the report (``format_report``).
    """
    if format not in WRITERS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    was_training = model.training
    try:
        report = _export(model, format, Path(output), input_size, max_detections, sample_images,
                         sample_proposals, num_samples, class_names, opset, check)  # fmt: skip
    finally:
        model.train(was_training)  # the graph put it in eval() mode
    logger.info("%s", format_report(report))
    return report


def _export(
    model: nn.Module,
    format: str,
    path: Path,
    input_size: int,
    max_detections: int | None,
    sample_images: Sequence[SampleSource] | Tensor | None,
    sample_proposals: Sequence[Tensor] | None,
    num_samples: int,
    class_names: Sequence[str],
    opset: int,
    check: bool,
) -> dict:
    graph = detection_graph(model, input_size=input_size, max_detections=max_detections)
    device = next(model.parameters()).device
    images = prepare_samples(sample_images, graph.input_size, num_samples).to(device)
    proposals = None
    if graph.input_names == PROPOSAL_INPUTS:
        proposals = list(sample_proposals) if sample_proposals is not None else search_proposals(images.cpu())
        if len(proposals) != len(images):
            raise ValueError(f"got {len(images)} sample images but {len(proposals)} sample proposal sets")
    elif sample_proposals is not None:
        raise ValueError(f"{type(model).__name__} makes its own proposals; do not pass sample_proposals")
    trace_count = min(2, len(images))
    trace_inputs = graph_inputs(images[:trace_count], None if proposals is None else proposals[:trace_count])
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = export_metadata(graph, class_names)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            WRITERS[format](graph, trace_inputs, path, metadata, opset)
    except BaseException:
        path.unlink(missing_ok=True)  # no half-written file where a deployment would look
        raise
    report = {
        "format": format,
        "output": str(path),
        "file_bytes": path.stat().st_size,
        "detector": type(model).__name__,
        "graph": type(graph).__name__,
        "export_seconds": round(time.perf_counter() - start, 3),
        "samples": "synthetic shapes images" if sample_images is None else "given images",
        **metadata,
    }
    if format == "onnx":
        report["opset"] = opset
    if check:
        report.update(check_export(path, format, graph, images, proposals))
    return report


def check_export(path: Path, format: str, graph: nn.Module, images: Tensor, proposals: list[Tensor] | None) -> dict:
    """Run the exported file on all sample images and compare with the PyTorch model."""
    start = time.perf_counter()
    inputs = graph_inputs(images, proposals)
    exported = run_exported(path, format, inputs, graph.input_names)
    reference = reference_outputs(graph.detector, images, proposals)
    comparison = compare_detections(exported, reference, graph.max_detections)
    # A tie broken the other way is a property of the data (equal scores), not of the export.
    comparison["passed"] = (
        comparison["max_box_diff_untied"] <= BOX_TOLERANCE
        and comparison["max_score_diff"] <= SCORE_TOLERANCE
        and comparison["counts_agree"]
        and comparison["labels_agree"]
        and comparison["padding_zero"]
    )
    return {"check": {"images": len(images), "runtime": runtime_name(format), **comparison,
                      "seconds": round(time.perf_counter() - start, 3)}}  # fmt: skip


def export_metadata(graph: nn.Module, class_names: Sequence[str]) -> dict:
    """What a deployment needs besides the file: sizes, names and the tensor layout."""
    size, k = graph.input_size, graph.max_detections
    shapes = {
        "images": f"float32 [B, 3, {size}, {size}] RGB in [0, 1], letterboxed",
        "proposals": "float32 [B, P, 4] xyxy input pixels",
        "num_proposals": "int64 [B]",
        "boxes": f"float32 [B, {k}, 4] xyxy input pixels",
        "scores": f"float32 [B, {k}]",
        "labels": f"int64 [B, {k}] 1..C, 0 = padding",
        "num_detections": "int64 [B]",
    }
    return {
        "input_size": size,
        "max_detections": k,
        "class_names": [str(name) for name in class_names],
        "inputs": {name: shapes[name] for name in graph.input_names},
        "outputs": {name: shapes[name] for name in OUTPUTS},
        "preprocessing": (
            f"RGB; longest side resized to {size} (bilinear), padded right and bottom with 0 to {size} x {size}; "
            "divided by 255 (the ImageNet normalisation is inside the graph); boxes / scale give stored pixels"
        ),
    }


def runtime_name(format: str) -> str:
    if format == "onnx":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}" + (" (torch.jit.load)" if format == "torchscript" else " (torch.export.load)")


def export_checkpoint(
    checkpoint: str | Path,
    format: str = "onnx",
    output: str | Path | None = None,
    *,
    input_size: int | None = None,
    max_detections: int | None = None,
    sample_images: Sequence[SampleSource] | None = None,
    num_samples: int = 3,
    device: str | torch.device = "cpu",
    overrides: Sequence[str] = (),
    opset: int = ONNX_OPSET,
    check: bool = True,
) -> dict:
    """``export_model`` for a training checkpoint: its model (EMA weights when saved), config and
    class names. ``output`` defaults to the checkpoint's path with ``.onnx``, ``.torchscript.pt``
    or ``.pt2``; ``input_size`` to the config's ``data.input_size``; ``sample_images`` to the first
    ``num_samples`` validation images of the config's data (synthetic images when its files are
    missing). ``overrides``: ``key=value`` changes to the stored config (``detkit.load``'s), e.g.
    ``model.head.score_threshold=0.3``: thresholds and caps are fixed in the exported graph."""
    if format not in WRITERS:
        raise ValueError(f"unknown export format {format!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    model, cfg, class_names = load_for_export(checkpoint, device, overrides)
    size = int(input_size) if input_size is not None else config_input_size(cfg)
    path = Path(output) if output is not None else Path(checkpoint).with_suffix(DEFAULT_SUFFIXES[format])
    if path.resolve() == Path(checkpoint).resolve():
        raise ValueError(f"output {path} would overwrite the checkpoint")
    samples = sample_images if sample_images is not None else validation_images(cfg, size, num_samples)
    from_validation = sample_images is None and samples is not None
    report = export_model(
        model,
        format=format,
        output=path,
        input_size=size,
        max_detections=max_detections,
        sample_images=samples,
        num_samples=num_samples,
        class_names=class_names,
        opset=opset,
        check=check,
    )
    if from_validation:
        report["samples"] = "validation images of the checkpoint's data"
    return {"checkpoint": str(checkpoint), **report}


def load_for_export(
    checkpoint: str | Path, device: str | torch.device = "cpu", overrides: Sequence[str] = ()
) -> tuple[nn.Module, DictConfig, list[str]]:
    """Model (``eval()`` mode, strictly loaded, EMA weights when saved), config and class names of
    a checkpoint, through ``detkit.load``."""
    predictor = load_detector(checkpoint, device=str(device), overrides=overrides)
    return predictor.model, predictor.cfg, predictor.class_names


def validation_images(cfg: DictConfig, input_size: int, count: int) -> list[Tensor] | None:
    """The first ``count`` validation images of ``cfg``'s data at ``input_size`` (letterboxed), or
    None (synthetic samples) when the data's files are not on this machine."""
    cfg = cfg.copy()
    OmegaConf.update(cfg, "data.input_size", input_size, force_add=True)
    if cfg.data.get("proposals") is not None:
        # Proposals for the check are searched on the samples alone, not on the whole split.
        OmegaConf.update(cfg, "data.proposals.enabled", False)
    try:
        dataset = build_dataset(cfg, "val", augment=False)
    except FileNotFoundError as error:
        logger.warning("validation data not found (%s); checking the export on synthetic images", error)
        return None
    # Datasets yield uint8; the graphs take float images in [0, 1].
    return [to_unit_float(dataset[index][0]) for index in range(min(count, len(dataset)))]


def format_report(report: dict) -> str:
    """A few lines for people: what was written, and how it compares with PyTorch."""
    lines = [
        f"Exported {report['detector']} to {report['output']} ({report['format']}, "
        f"{report['file_bytes'] / 1e6:.1f} MB) in {report['export_seconds']:.1f} s",
        "  inputs: " + "; ".join(f"{name} {shape}" for name, shape in report["inputs"].items()),
        "  outputs: " + "; ".join(f"{name} {shape}" for name, shape in report["outputs"].items()),
    ]
    check = report.get("check")
    if check:
        counts = "agree" if check["counts_agree"] else (
            f"DIFFER (exported {check['counts_exported']}, PyTorch {check['counts_pytorch']})"
        )
        lines.append(
            f"  check on {check['images']} {report['samples']} with {check['runtime']}: largest box difference "
            f"{check['max_box_diff_untied']:.2g} px, largest score difference {check['max_score_diff']:.2g}, "
            f"{check['detections']} detections, counts {counts}, "
            f"labels {'agree' if check['labels_agree'] else 'DIFFER'}"
            f" -> {'PASSED' if check['passed'] else 'FAILED'} (tolerances {BOX_TOLERANCE} px, {SCORE_TOLERANCE})"
        )
        if not check["detections"]:
            lines.append(
                "  no detection above the score threshold on these images: only empty outputs were compared; "
                "check on images where the model detects something (sample_images)"
            )
        if check["tie_breaks"]:
            lines.append(
                f"  {check['tie_breaks']} detection(s) differ by a tie broken the other way: two overlapping "
                f"candidates of equal score, of which NMS kept the other "
                f"(box difference up to {check['max_box_diff']:.2g} px)"
            )
    return "\n".join(lines)
