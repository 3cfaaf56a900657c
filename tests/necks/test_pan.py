"""YOLOv4's SPP + PANet neck: shapes, both paths (the deep output depends on the shallow input,
which YOLOv3's top-down neck cannot do), and the CSP variant."""

import pytest
import torch

from detkit.layers.csp import CSPBlock
from detkit.layers.spp_block import SPPBlock
from detkit.necks.pan import PANNeck
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("c3", 12, 8), FeatureInfo("c4", 20, 16), FeatureInfo("c5", 24, 32)]


def features(height, width, n=2, requires_grad=False):
    return {
        info.name: torch.rand(
            n, info.channels, -(-height // info.stride), -(-width // info.stride), requires_grad=requires_grad
        )
        for info in INFO
    }


@pytest.mark.parametrize("csp", [False, True])
def test_outputs_names_channels_strides_and_shapes(csp):
    neck = PANNeck(feature_info=INFO, channels=(8, 16, 32), num_convs=3, csp=csp)
    assert [(i.name, i.channels, i.stride) for i in neck.feature_info] == [("p3", 8, 8), ("p4", 16, 16), ("p5", 32, 32)]
    out = neck(features(64, 96))
    assert list(out) == ["p3", "p4", "p5"]
    assert out["p3"].shape == (2, 8, 8, 12) and out["p4"].shape == (2, 16, 4, 6) and out["p5"].shape == (2, 32, 2, 3)
    assert any(isinstance(m, CSPBlock) for m in neck.modules()) == csp


def test_spp_sits_on_the_deepest_level_only_when_asked():
    assert sum(isinstance(m, SPPBlock) for m in PANNeck(feature_info=INFO, channels=(8, 16, 32)).modules()) == 1
    assert not any(
        isinstance(m, SPPBlock) for m in PANNeck(feature_info=INFO, channels=(8, 16, 32), spp=False).modules()
    )


def test_both_paths_every_output_sees_every_input():
    neck = PANNeck(feature_info=INFO, channels=(8, 16, 32), num_convs=1).eval()
    inputs = features(64, 64, n=1, requires_grad=True)
    out = neck(inputs)
    # Bottom-up: p5 depends on c3 (top-down: p3 depends on c5).
    (grad_c3,) = torch.autograd.grad(out["p5"].sum(), inputs["c3"], retain_graph=True)
    (grad_c5,) = torch.autograd.grad(out["p3"].sum(), inputs["c5"])
    assert grad_c3.abs().sum() > 0 and grad_c5.abs().sum() > 0


def test_odd_sizes_and_bad_arguments():
    neck = PANNeck(feature_info=INFO, channels=(8, 16, 32), num_convs=1)
    out = neck(features(72, 40))  # c5 3 × 2, c4 5 × 3, c3 9 × 5
    assert out["p3"].shape[-2:] == (9, 5) and out["p4"].shape[-2:] == (5, 3) and out["p5"].shape[-2:] == (3, 2)
    with pytest.raises(ValueError, match="no output"):
        PANNeck(feature_info=INFO, in_features=["c2", "c5"], channels=(8, 16))
    with pytest.raises(ValueError, match="one width per level"):
        PANNeck(feature_info=INFO, channels=(8, 16))
