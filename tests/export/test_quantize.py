"""INT8 through the runtimes: ``detkit.load(checkpoint, backend=..., precision="int8")`` runs a QDQ
model of the checkpoint's export with QuantizeLinear / DequantizeLinear around the compute
operators and none in the postprocessing, the prediction layers in float; ONNX Runtime and
OpenVINO detect the same with it; the file is cached by a key that holds the calibration images
and settings; INT8 with PyTorch, or without ONNX Runtime's tools, is refused naming why.

The models here have random weights (He-initialised, as in the other export tests): what their
INT8 detections are worth against float32 says little, so accuracy is measured on trained
checkpoints instead (``test_int8_metrics_of_a_trained_checkpoint``, slow; docs/EXPORT.md).
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

import detkit
from detkit.cli import main as cli_main
from detkit.export.backend import check_precision
from detkit.export.check import pair_detections
from detkit.export.quantize import QuantizationSettings, prediction_layers
from detkit.export.runtimes import BackendNotInstalledError
from detkit.utils.visualization import save_image
from tests.export.detectors import SMALL_DATA, save_small_checkpoint
from tests.export.test_runtimes import images

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "openvino")),
    reason="needs onnx, onnxruntime and openvino (the export and openvino extras)",
)
# Operators of the postprocessing: no quantized tensor may flow into or out of one.
POSTPROCESSING = {"TopK", "NonMaxSuppression", "Exp", "Sigmoid", "Softmax", "CumSum", "ScatterND", "GatherND"}
# ONNX Runtime and OpenVINO run the same INT8 model: their integer kernels round a few values the
# other way, which moves boxes by a fraction of a pixel (measured up to 0.37 px, scores 0.006).
PARITY_BOX_PX, PARITY_SCORE = 1.0, 0.02


def quantization_metadata(path) -> dict:
    import onnx

    model = onnx.load(str(path))
    return json.loads({prop.key: prop.value for prop in model.metadata_props}["detkit"])


@pytest.mark.parametrize(
    ("family", "heads"),
    [
        ("faster_rcnn", {"/objectness/Conv", "/deltas/Conv", "/predictor/cls_score/Gemm", "/predictor/bbox_pred/Gemm"}),
        ("yolov3", {f"/head/predictors.{level}/Conv" for level in range(3)}),
        ("fast_rcnn", {"/predictor/cls_score/Gemm", "/predictor/bbox_pred/Gemm"}),
    ],
)
def test_int8_graph_quantizes_the_compute_and_keeps_heads_and_postprocessing_float(family, heads, checkpoint) -> None:
    import onnx

    predictor = detkit.load(checkpoint(family), device="cpu", backend="onnxruntime", precision="int8")
    assert predictor.precision == "int8" and ".int8." in predictor.export.path.name
    model = onnx.load(str(predictor.export.path))
    info = quantization_metadata(predictor.export.path)
    assert info["precision"] == "int8" and set(info["quantization"]["float_nodes"]) == heads
    assert prediction_layers(model) and set(prediction_layers(model)) == heads
    producer = {name: node for node in model.graph.node for name in node.output}
    weights = {tensor.name for tensor in model.graph.initializer}
    compute = [node for node in model.graph.node if node.op_type in ("Conv", "Gemm", "MatMul")]
    for node in compute:
        sources = [producer[name].op_type if name in producer else "initializer" for name in node.input[:2]]
        if node.name in heads:
            # Float weights, read directly; the input is the dequantized feature map.
            assert node.input[1] in weights, node.name
        else:
            assert sources == ["DequantizeLinear", "DequantizeLinear"], (node.name, sources)
    assert sum(node.name not in heads for node in compute) >= 5
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in producer:
            assert producer[node.input[0]].op_type not in POSTPROCESSING, node.name
        if node.op_type in POSTPROCESSING:
            sources = {producer[name].op_type for name in node.input if name in producer}
            assert "DequantizeLinear" not in sources, node.name
    for output in model.graph.output:  # the detections come out of float operators
        assert producer[output.name].op_type not in ("QuantizeLinear", "DequantizeLinear")


@pytest.mark.parametrize("family", ["yolov3", "faster_rcnn", "rfcn", "fast_rcnn"])
def test_both_runtimes_detect_the_same_with_the_int8_model(family, checkpoint) -> None:
    """One QDQ file, two runtimes: the same detections, paired one to one, within a pixel. (The
    batch of three runs OpenVINO's model compiled for three images; the single image another.)"""
    path = checkpoint(family)
    onnxruntime = detkit.load(path, device="cpu", backend="onnxruntime", precision="int8")
    openvino = detkit.load(path, device="cpu", backend="openvino", precision="int8")
    assert openvino.export.path == onnxruntime.export.path and not openvino.export.built
    for inputs in (images(), [images()[1]]):
        want, got = onnxruntime(inputs), openvino(inputs)
        assert sum(len(det["scores"]) for det in want) > 0
        for ours, theirs in zip(got, want, strict=True):
            assert len(ours["scores"]) == len(theirs["scores"])
            numpy = [{key: value.numpy() for key, value in det.items() if key != "names"} for det in (ours, theirs)]
            mine, paired = pair_detections(numpy[0]["boxes"], numpy[0]["scores"], numpy[0]["labels"], numpy[1])
            assert len(mine) == len(ours["scores"])
            assert np.abs(numpy[0]["boxes"][mine] - numpy[1]["boxes"][paired]).max(initial=0.0) <= PARITY_BOX_PX
            assert np.abs(numpy[0]["scores"][mine] - numpy[1]["scores"][paired]).max(initial=0.0) <= PARITY_SCORE
    assert set(openvino.model.session.compiled_by_batch) == {3, 1}  # a quantized model: one per batch size


def test_int8_model_is_cached_and_rebuilt_when_its_calibration_changes(workspace, tmp_path) -> None:
    folder = workspace / "cached"
    folder.mkdir()
    path = folder / "best.pt"
    save_small_checkpoint("yolov1", path, *SMALL_DATA)
    first = detkit.load(path, device="cpu", backend="onnxruntime", precision="int8").export
    assert first.built and first.path.parent == folder
    stamp = first.path.stat().st_mtime_ns
    again = detkit.load(path, device="cpu", backend="openvino", precision="int8").export
    assert (again.path, again.built) == (first.path, False) and again.path.stat().st_mtime_ns == stamp
    # The float export beside it is the one the float predictor runs, untouched.
    fp32 = detkit.load(path, device="cpu", backend="onnxruntime").export
    assert not fp32.built and first.path.name.startswith(fp32.path.stem + ".int8.")
    # Fewer calibration images, or other ones: another key.
    fewer = detkit.load(path, device="cpu", backend="onnxruntime", precision="int8", calibration_images=2).export
    assert fewer.built and fewer.path != first.path
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    for index, image in enumerate(images()):
        save_image(pictures / f"{index}.png", image)
    mine = detkit.load(path, device="cpu", backend="onnxruntime", precision="int8", calibration=pictures).export
    assert mine.built and mine.path not in (first.path, fewer.path)
    assert quantization_metadata(mine.path)["quantization"]["calibration_images"] == 3
    same = detkit.load(path, device="cpu", backend="onnxruntime", precision="int8", calibration=pictures).export
    assert (same.path, same.built) == (mine.path, False)
    # A changed float graph (a threshold is fixed in it): a new float export, hence a new INT8 model.
    stricter = detkit.load(path, device="cpu", backend="onnxruntime", precision="int8",
                           overrides=["model.head.score_threshold=0.5"]).export  # fmt: skip
    assert stricter.built and stricter.path not in (first.path, fewer.path, mine.path)
    assert not any(folder.glob("*.partial"))


def test_int8_is_refused_where_pytorch_runs_the_model(checkpoint) -> None:
    path = checkpoint("yolov1")
    with pytest.raises(ValueError, match="precision=int8 runs the exported graph through onnxruntime or openvino"):
        detkit.load(path, device="cpu", backend="torch", precision="int8")
    # auto picks the model itself on a GPU: INT8 is refused there too, saying so.
    with pytest.raises(ValueError, match="backend=auto picks the PyTorch model here \\(device cuda"):
        check_precision("int8", "auto", torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of fp32, int8"):
        detkit.load(path, device="cpu", backend="onnxruntime", precision="fp16")
    with pytest.raises(ValueError, match="calibration= is for precision=int8"):
        detkit.load(path, device="cpu", backend="onnxruntime", calibration="images/")
    with pytest.raises(ValueError, match="unknown calibration method 'median'"):
        QuantizationSettings(method="median")


def test_int8_without_onnxruntime_names_the_extra(checkpoint, monkeypatch) -> None:
    """OpenVINO runs INT8 models, but ONNX Runtime's tools write them: without onnxruntime, one line."""
    path = checkpoint("yolov1")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)
    message = r'precision=int8 needs the onnxruntime package .*pip install "detkit\[export\]"'
    with pytest.raises(BackendNotInstalledError, match=message):
        detkit.load(path, device="cpu", backend="openvino", precision="int8")
    assert detkit.load(path, device="cpu", backend="openvino").precision == "fp32"  # float32 does not need it


def test_predict_and_eval_commands_take_precision(checkpoint, tmp_path, capsys) -> None:
    path = checkpoint("faster_rcnn")
    inputs = tmp_path / "images"
    inputs.mkdir()
    for index, image in enumerate(images()):
        save_image(inputs / f"{index + 1:06d}.png", image)
    out = tmp_path / "out"
    argv = ["predict", f"checkpoint={path}", f"input={inputs}", f"output={out}", "backend=openvino", "precision=int8",
            f"calibration={inputs}"]  # fmt: skip
    assert cli_main(argv) == 0
    assert len(json.loads((out / "coco_results.json").read_text())) > 0
    metrics_file = tmp_path / "metrics.json"
    argv = ["eval", f"checkpoint={path}", "backend=onnxruntime", "precision=int8", "calibration_images=4",
            "report=none", f"output={metrics_file}"]  # fmt: skip
    assert cli_main(argv) == 0
    metrics = json.loads(metrics_file.read_text())
    assert (metrics["backend"], metrics["precision"]) == ("onnxruntime", "int8")
    assert cli_main(["eval", f"checkpoint={path}", "backend=onnxruntime", f"calibration={inputs}"]) != 0
    assert "calibration= and calibration_images= are for precision=int8" in capsys.readouterr().err


@pytest.mark.slow  # trains R-FCN, MobileNet v1 x0.5 from scratch: about two minutes on a quiet box
def test_int8_metrics_of_a_trained_checkpoint(tmp_path, monkeypatch) -> None:
    """A checkpoint of rfcn_mobilenet_v1_shapes_quick (the first row of docs/EXPORT.md's INT8
    table) through both runtimes in INT8: COCO AP and AP50 within 0.01 of float32 on its
    validation split (measured: 0.6612 against 0.6624)."""
    from detkit.engine.config import load_config
    from detkit.jobs.train_and_evaluate import evaluate_checkpoint, train

    monkeypatch.setenv("DETKIT_CACHE", str(tmp_path / "cache"))
    train(load_config(["config=rfcn_mobilenet_v1_shapes_quick", f"output_dir={tmp_path / 'run'}", "engine.vis_images=0",
                       "engine.tensorboard=false"]))  # fmt: skip
    best = tmp_path / "run" / "best.pt"
    want = evaluate_checkpoint(best, backend="onnxruntime")
    assert want["coco"]["AP50"] > 0.8  # a trained model, not a comparison of two failures
    for backend in ("onnxruntime", "openvino"):
        got = evaluate_checkpoint(best, backend=backend, precision="int8")
        for key in ("AP", "AP50"):
            assert got["coco"][key] == pytest.approx(want["coco"][key], abs=0.01), (backend, key)
