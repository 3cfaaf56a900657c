import pytest
import torch

from detkit.necks.yolov3_fpn import YOLOv3FPN, conv_set
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("c3", 12, 8), FeatureInfo("c4", 20, 16), FeatureInfo("c5", 24, 32)]


def features(height, width, n=2):
    return {
        info.name: torch.rand(n, info.channels, -(-height // info.stride), -(-width // info.stride)) for info in INFO
    }


def test_outputs_names_channels_strides_and_shapes():
    neck = YOLOv3FPN(feature_info=INFO, channels=(8, 16, 32), num_convs=3)
    assert [(i.name, i.channels, i.stride) for i in neck.feature_info] == [("p3", 8, 8), ("p4", 16, 16), ("p5", 32, 32)]
    out = neck(features(64, 96))
    assert list(out) == ["p3", "p4", "p5"]
    assert out["p3"].shape == (2, 8, 8, 12) and out["p4"].shape == (2, 16, 4, 6) and out["p5"].shape == (2, 32, 2, 3)


def test_odd_sizes_and_concatenation_widths():
    neck = YOLOv3FPN(feature_info=INFO, channels=(8, 16, 32), num_convs=1)
    # p4's conv set sees c4 (20) + half of p5 (16); p3's sees c3 (12) + half of p4 (8).
    assert neck.conv_sets[1][0][0].in_channels == 36 and neck.conv_sets[2][0][0].in_channels == 20
    out = neck(features(72, 40))  # c5 is 3 × 2, c4 5 × 3: upsampling must land on the odd sizes
    assert out["p3"].shape[-2:] == (9, 5) and out["p4"].shape[-2:] == (5, 3)


def test_top_down_path_reaches_the_shallow_level():
    neck = YOLOv3FPN(feature_info=INFO, channels=(8, 16, 32), num_convs=1).eval()
    feats = features(64, 64, n=1)
    base = neck(feats)["p3"]
    feats["c5"] = feats["c5"] + 1.0
    assert not torch.allclose(neck(feats)["p3"], base)


def test_two_levels_and_clear_errors():
    neck = YOLOv3FPN(feature_info=INFO, in_features=["c4", "c5"], channels=(16, 32), num_convs=1)
    assert [i.name for i in neck.feature_info] == ["p4", "p5"]
    with pytest.raises(ValueError, match=r"no output \['c2'\]"):
        YOLOv3FPN(feature_info=INFO, in_features=["c2", "c5"], channels=(16, 32))
    with pytest.raises(ValueError, match="2 output widths for 3 input levels"):
        YOLOv3FPN(feature_info=INFO, channels=(16, 32))
    with pytest.raises(ValueError, match="odd"):
        conv_set(4, 4, 2)
