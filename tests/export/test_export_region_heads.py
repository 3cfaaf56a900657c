"""SPP-net and R-FCN exported: SPP-net's pyramid is plain RoI max pooling (ONNX MaxRoiPool, so
both formats); R-FCN's position-sensitive pooling has no ONNX operator, so TorchScript only, and
asking for ONNX is refused with the reason."""

from __future__ import annotations

import pytest

from detkit.export import export_model
from tests.export.detectors import INPUT_SIZE, needs_onnx, small_detector
from tests.export.test_export_parity import assert_agrees


@pytest.mark.parametrize(
    "family, format",
    [pytest.param("spp_net", "onnx", marks=needs_onnx), ("spp_net", "torchscript"), ("rfcn", "torchscript")],
)
def test_exported_detections_match_pytorch(family: str, format: str, tmp_path) -> None:
    model = small_detector(family)
    report = export_model(model, format=format, output=tmp_path / f"{family}.{format}", input_size=INPUT_SIZE)
    assert_agrees(report)
    assert min(report["check"]["counts_pytorch"]) > 0
    assert report["inputs"].keys() == ({"images", "proposals", "num_proposals"} if family == "spp_net" else {"images"})


def test_rfcn_to_onnx_is_refused_with_the_reason(tmp_path) -> None:
    with pytest.raises(ValueError, match="no ONNX operator.*torchscript"):
        export_model(small_detector("rfcn"), format="onnx", output=tmp_path / "m.onnx", input_size=INPUT_SIZE)
    assert not (tmp_path / "m.onnx").exists()
