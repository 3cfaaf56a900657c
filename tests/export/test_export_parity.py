"""Every detector family, exported to ONNX and to TorchScript, detects what the PyTorch model
detects on sample images: boxes within 1e-3 px, scores within 1e-4, the same counts and labels.

The exporter's own check runs the file (onnxruntime; torch.jit.load) on three images after
tracing on two, so every comparison here also runs a batch size the trace never saw.
"""

from __future__ import annotations

import pytest
import torch

from detkit.export import export_model
from detkit.export.check import graph_inputs, run_exported
from detkit.export.graphs import OUTPUTS, detection_graph
from detkit.export.samples import prepare_samples
from tests.export.detectors import FAMILIES, INPUT_SIZE, needs_onnx, small_detector

FORMATS = [pytest.param("onnx", marks=needs_onnx), "torchscript"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pt2": ".pt2"}


def assert_agrees(report: dict) -> None:
    check = report["check"]
    assert check["images"] == 3
    assert check["max_box_diff"] <= 1e-3, check
    assert check["max_score_diff"] <= 1e-4, check
    assert check["counts_exported"] == check["counts_pytorch"], check
    assert check["labels_agree"] and check["padding_zero"] and check["passed"], check
    assert check["tie_breaks"] == 0, check


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("family", FAMILIES)
def test_exported_detections_match_pytorch(family: str, format: str, tmp_path) -> None:
    model = small_detector(family)
    report = export_model(model, format=format, output=tmp_path / f"{family}{SUFFIX[format]}", input_size=INPUT_SIZE)
    assert_agrees(report)
    # Not a comparison of empty lists: every sample image has detections above the threshold.
    assert min(report["check"]["counts_pytorch"]) > 0
    proposal_inputs = {"images", "proposals", "num_proposals"}
    assert report["inputs"].keys() == (proposal_inputs if family in ("fast_rcnn", "rcnn") else {"images"})
    assert not model.training


@needs_onnx
def test_cap_keeps_the_best_detections(tmp_path) -> None:
    # K = 5 while the detector itself keeps 100: the file holds the PyTorch model's best five.
    report = export_model(
        small_detector("faster_rcnn"), format="onnx", output=tmp_path / "m.onnx", input_size=INPUT_SIZE,
        max_detections=5,
    )
    assert_agrees(report)
    assert report["check"]["counts_exported"] == [5, 5, 5]
    assert report["outputs"]["boxes"] == "float32 [B, 5, 4] xyxy input pixels"


@pytest.mark.parametrize("format", FORMATS)
def test_no_detection_and_no_proposal(format: str, tmp_path) -> None:
    """Nothing above the threshold, and images without a single proposal: zero counts, all-zero
    padding (the NMS of an empty set is inside the graph too)."""
    report = export_model(
        small_detector("ssd", "model.head.score_threshold=1.0"),
        format=format, output=tmp_path / f"ssd{SUFFIX[format]}", input_size=INPUT_SIZE,
    )  # fmt: skip
    assert_agrees(report)
    assert report["check"]["counts_exported"] == [0, 0, 0]
    box = torch.tensor([[10.0, 12.0, 60.0, 70.0], [30.0, 5.0, 90.0, 50.0]])
    report = export_model(
        small_detector("fast_rcnn"),
        format=format, output=tmp_path / f"fast{SUFFIX[format]}", input_size=INPUT_SIZE,
        sample_proposals=[torch.zeros(0, 4), box, torch.zeros(0, 4)],
    )  # fmt: skip
    assert_agrees(report)
    counts = report["check"]["counts_exported"]
    assert counts[0] == counts[2] == 0 and counts[1] > 0


@pytest.mark.parametrize("format", FORMATS)
def test_batch_and_proposal_count_are_dynamic(format: str, tmp_path) -> None:
    """One file, run on 1 and on 4 images with different proposal counts: each image's detections
    are the same whatever else is in the batch (and whatever the padded P)."""
    model = small_detector("fast_rcnn")
    path = tmp_path / f"m{SUFFIX[format]}"
    export_model(model, format=format, output=path, input_size=INPUT_SIZE, check=False)
    images = prepare_samples(None, INPUT_SIZE, 4)
    generator = torch.Generator().manual_seed(1)
    corners = torch.rand(4, 30, 2, generator=generator) * 80
    proposals = [
        torch.cat((c, c + 10 + torch.rand(30, 2, generator=generator) * 40), 1)[: 5 + 7 * i]
        for i, c in enumerate(corners)
    ]
    names = detection_graph(model, input_size=INPUT_SIZE).input_names
    together = run_exported(path, format, graph_inputs(images, proposals), names)
    for index in range(4):
        alone = run_exported(path, format, graph_inputs(images[index : index + 1], proposals[index : index + 1]), names)
        assert int(alone[3][0]) == int(together[3][index]) > 0
        for name, single, batched in zip(OUTPUTS, alone, together, strict=True):
            assert abs(single[0].astype(float) - batched[index].astype(float)).max() <= 1e-4, name


@needs_onnx
@pytest.mark.parametrize("family", ["faster_rcnn", "fast_rcnn"])
def test_roi_pool_ties(family: str, tmp_path) -> None:
    """RoI pooling as configured (ONNX MaxRoiPool): equal to PyTorch but for ties between
    proposals that pool the same cells, which the check tells apart and reports."""
    model = small_detector(family, defaults=False)
    assert model.roi_head.pooler == "roi_pool"
    report = export_model(model, format="onnx", output=tmp_path / "m.onnx", input_size=INPUT_SIZE)
    check = report["check"]
    assert check["passed"] and check["counts_agree"] and check["labels_agree"], check
    assert check["max_box_diff_untied"] <= 1e-3 and check["max_score_diff"] <= 1e-4, check
    assert check["tie_breaks"] <= 0.02 * check["detections"], check


def test_pt2_where_torch_export_works(tmp_path) -> None:
    path = tmp_path / "m.pt2"
    report = export_model(small_detector("fast_rcnn"), format="pt2", output=path, input_size=INPUT_SIZE)
    assert_agrees(report)
    # Nothing to keep at all: the program must not rely on NMS keeping a box.
    images = prepare_samples(None, INPUT_SIZE, 2)
    outputs = run_exported(path, "pt2", graph_inputs(images, [torch.zeros(0, 4)] * 2), report["inputs"].keys())
    assert outputs[3].tolist() == [0, 0] and not outputs[0].any()


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "ssd"])
def test_pt2_every_family_but_ssd(family: str, tmp_path) -> None:
    report = export_model(small_detector(family), format="pt2", output=tmp_path / "m.pt2", input_size=INPUT_SIZE)
    assert_agrees(report)


def test_pt2_of_ssd_fails_with_a_way_out(tmp_path) -> None:
    path = tmp_path / "m.pt2"
    with pytest.raises(RuntimeError, match="torch.export cannot export .*format=onnx or format=torchscript"):
        export_model(small_detector("ssd"), format="pt2", output=path, input_size=INPUT_SIZE, check=False)
    assert not path.exists()


def test_bad_arguments(tmp_path) -> None:
    model = small_detector("yolov1")
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_model(model, format="tflite", output=tmp_path / "m", input_size=INPUT_SIZE)
    model.train()
    with pytest.raises(ValueError, match=r"Tensor\[3, 128, 128\]"):
        export_model(
            model, format="torchscript", output=tmp_path / "m", input_size=INPUT_SIZE,
            sample_images=[torch.rand(3, 64, 64)],
        )
    assert model.training  # the caller's mode comes back, also after a failure
    model.eval()
    with pytest.raises(ValueError, match="makes its own proposals"):
        export_model(
            model, format="torchscript", output=tmp_path / "m", input_size=INPUT_SIZE,
            sample_proposals=[torch.zeros(0, 4)] * 3,
        )
    with pytest.raises(ValueError, match="cannot export a Linear"):
        export_model(torch.nn.Linear(2, 2), format="torchscript", output=tmp_path / "m", input_size=INPUT_SIZE)


# The map the two-stage ImageNet starts read: FPN's top-down pathway kept to p3 (a neck before the
# RPN / the RoI head, which the exported graph must run too).
P3_NECK = ("+model/neck=top_down_p3", "model.neck.out_channels=16")


@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("family", ["faster_rcnn", "fast_rcnn"])
def test_a_two_stage_detector_with_a_neck_exports(family: str, format: str, tmp_path) -> None:
    model = small_detector(family, *P3_NECK)
    assert model.neck is not None and model.feature_name == "p3"
    report = export_model(model, format=format, output=tmp_path / f"{family}{SUFFIX[format]}", input_size=INPUT_SIZE)
    assert_agrees(report)
    assert min(report["check"]["counts_pytorch"]) > 0
