"""SPP-net and R-FCN exported: SPP-net's pyramid is plain RoI max pooling (ONNX MaxRoiPool);
R-FCN's position-sensitive pooling, which ONNX has no operator for, becomes ONNX RoiAlign over
one sub-box per bin (``detkit.ops.ps_roi``), for both of its poolers."""

from __future__ import annotations

import pytest

from detkit.export import export_model
from tests.export.detectors import INPUT_SIZE, needs_onnx, small_detector
from tests.export.test_export_parity import assert_agrees


@pytest.mark.parametrize(
    "family, format",
    [
        pytest.param("spp_net", "onnx", marks=needs_onnx),
        ("spp_net", "torchscript"),
        pytest.param("rfcn", "onnx", marks=needs_onnx),
        ("rfcn", "torchscript"),
    ],
)
def test_exported_detections_match_pytorch(family: str, format: str, tmp_path) -> None:
    model = small_detector(family)
    report = export_model(model, format=format, output=tmp_path / f"{family}.{format}", input_size=INPUT_SIZE)
    assert_agrees(report)
    assert min(report["check"]["counts_pytorch"]) > 0
    assert report["inputs"].keys() == ({"images", "proposals", "num_proposals"} if family == "spp_net" else {"images"})


@needs_onnx
def test_rfcn_with_ps_roi_pool_to_onnx(tmp_path) -> None:
    model = small_detector("rfcn", "model.roi_head.pooler=ps_roi_pool")
    assert_agrees(export_model(model, format="onnx", output=tmp_path / "m.onnx", input_size=INPUT_SIZE))
