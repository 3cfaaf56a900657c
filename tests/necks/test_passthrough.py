"""YOLOv2's passthrough neck: shapes, the reorganised c4 inside its output, and its errors."""

import pytest
import torch

from detkit.layers.space_to_depth import space_to_depth
from detkit.necks.passthrough import PassthroughNeck
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("c3", 6, 8), FeatureInfo("c4", 10, 16), FeatureInfo("c5", 12, 32)]


def test_output_is_the_reorganised_fine_map_then_the_deep_path():
    torch.manual_seed(0)
    neck = PassthroughNeck(feature_info=INFO, channels=16, fine_channels=3, num_convs=2).eval()
    assert [(i.name, i.channels, i.stride) for i in neck.feature_info] == [("p5", 16 + 12, 32)]
    features = {"c4": torch.randn(2, 10, 6, 4), "c5": torch.randn(2, 12, 3, 2)}
    out = neck(features)["p5"]
    assert out.shape == (2, 28, 3, 2)
    with torch.no_grad():
        torch.testing.assert_close(out[:, :12], space_to_depth(neck.reduce(features["c4"]), 2))
        torch.testing.assert_close(out[:, 12:], neck.deep(features["c5"]))


def test_wrong_inputs_are_named():
    with pytest.raises(ValueError, match="has \\['c3', 'c4', 'c5'\\]"):
        PassthroughNeck(feature_info=INFO, in_features=("c2", "c5"))
    with pytest.raises(ValueError, match="twice the stride"):
        PassthroughNeck(feature_info=INFO, in_features=("c3", "c5"))
    neck = PassthroughNeck(feature_info=INFO, channels=8, fine_channels=2)
    with pytest.raises(ValueError, match="multiple of the deep stride"):
        neck({"c4": torch.randn(1, 10, 8, 8), "c5": torch.randn(1, 12, 3, 3)})
