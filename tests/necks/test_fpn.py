import pytest
import torch
import torch.nn.functional as F

from detkit.necks.fpn import FPN
from detkit.structures import FeatureInfo

INFO = [FeatureInfo("c3", 12, 8), FeatureInfo("c4", 20, 16), FeatureInfo("c5", 24, 32)]


def features(height, width, n=2):
    torch.manual_seed(0)
    return {
        info.name: torch.rand(n, info.channels, -(-height // info.stride), -(-width // info.stride)) for info in INFO
    }


def test_retinanet_levels_p3_to_p7_names_channels_strides_and_shapes():
    neck = FPN(feature_info=INFO, out_channels=16)
    assert [(i.name, i.channels, i.stride) for i in neck.feature_info] == [
        ("p3", 16, 8), ("p4", 16, 16), ("p5", 16, 32), ("p6", 16, 64), ("p7", 16, 128)
    ]
    out = neck(features(256, 384))
    assert list(out) == ["p3", "p4", "p5", "p6", "p7"]
    # Each level halves the previous one: the stride matches the input size (256 x 384).
    expected = {"p3": (32, 48), "p4": (16, 24), "p5": (8, 12), "p6": (4, 6), "p7": (2, 3)}
    assert {name: tuple(x.shape[-2:]) for name, x in out.items()} == expected
    assert all(x.shape[:2] == (2, 16) for x in out.values())


def test_odd_sizes_follow_the_backbone_rounding():
    out = FPN(feature_info=INFO, out_channels=8)(features(72, 40))
    # c5 is 3 x 2, c4 5 x 3, c3 9 x 5; stride-2 3x3 convolutions with padding 1 round up too.
    assert [tuple(x.shape[-2:]) for x in out.values()] == [(9, 5), (5, 3), (3, 2), (2, 1), (1, 1)]


def test_outputs_match_a_hand_written_top_down_pass():
    neck = FPN(feature_info=INFO, out_channels=8).eval()
    feats = features(64, 64, n=1)
    out = neck(feats)
    lateral = {name: conv(feats[name]) for name, conv in zip(["c3", "c4", "c5"], neck.laterals, strict=True)}
    m5 = lateral["c5"]
    m4 = lateral["c4"] + m5.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    m3 = lateral["c3"] + m4.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    for name, merged, conv in zip(["p3", "p4", "p5"], [m3, m4, m5], neck.outputs, strict=True):
        torch.testing.assert_close(out[name], conv(merged))
    # The paper: p6 = conv3x3/s2(c5), p7 = conv3x3/s2(ReLU(p6)).
    p6_conv, p7_conv = neck.extras[0][0], neck.extras[1][0]
    p6 = F.conv2d(feats["c5"], p6_conv.weight, p6_conv.bias, stride=2, padding=1)
    p7 = F.conv2d(p6.relu(), p7_conv.weight, p7_conv.bias, stride=2, padding=1)
    torch.testing.assert_close(out["p6"], p6)
    torch.testing.assert_close(out["p7"], p7)


def test_faster_rcnn_variant_pools_p6_from_p5():
    neck = FPN(feature_info=INFO, out_channels=8, extra_levels=1, extra_mode="pool")
    out = neck(features(64, 96))
    assert [i.name for i in neck.feature_info] == ["p3", "p4", "p5", "p6"] and len(neck.extras) == 0
    torch.testing.assert_close(out["p6"], out["p5"][..., ::2, ::2])


def test_extra_levels_from_p5_and_no_extra_levels():
    neck = FPN(feature_info=INFO, out_channels=8, extra_source="output")
    assert neck.extras[0][0].in_channels == 8
    plain = FPN(feature_info=INFO, out_channels=8, extra_levels=0, norm="gn")
    assert [i.name for i in plain.feature_info] == ["p3", "p4", "p5"]
    assert list(plain(features(64, 64))) == ["p3", "p4", "p5"]
    assert isinstance(plain.outputs[0][1], torch.nn.GroupNorm)


@pytest.mark.parametrize("backbone", ["vgg16", "resnet18", "mobilenet_v1"])
def test_on_every_backbone_through_feature_info(backbone):
    from detkit.backbones import build_backbone

    net = build_backbone(
        backbone, out_features=("c3", "c4", "c5"), **({"width_mult": 0.25} if backbone == "mobilenet_v1" else {})
    )
    neck = FPN(feature_info=net.feature_info, out_channels=16).eval()
    with torch.no_grad():
        out = neck(net(torch.rand(1, 3, 96, 128)))
    assert {name: tuple(x.shape[1:]) for name, x in out.items()} == {
        "p3": (16, 12, 16), "p4": (16, 6, 8), "p5": (16, 3, 4), "p6": (16, 2, 2), "p7": (16, 1, 1)
    }


def test_clear_errors():
    with pytest.raises(ValueError, match=r"no output \['c2'\]"):
        FPN(feature_info=INFO, in_features=["c2", "c5"])
    with pytest.raises(ValueError, match="consecutive powers of two"):
        FPN(feature_info=INFO, in_features=["c3", "c5"])
    with pytest.raises(ValueError, match="extra_mode"):
        FPN(feature_info=INFO, extra_mode="upsample")
    with pytest.raises(ValueError, match="unknown norm"):
        FPN(feature_info=INFO, norm="ln")


def test_outputs_keeps_the_top_down_pathway_but_only_the_finest_level():
    full = FPN(feature_info=INFO, out_channels=8, extra_levels=0)
    finest = FPN(feature_info=INFO, out_channels=8, extra_levels=0, outputs=["p3"])
    finest.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith(("outputs.1", "outputs.2"))})
    assert [(i.name, i.channels, i.stride) for i in finest.feature_info] == [("p3", 8, 8)]
    assert len(finest.outputs) == 1
    feats = features(64, 96)
    out = finest(feats)
    assert list(out) == ["p3"]
    # p3 still carries c4 and c5 through the top-down sum: the same map as the full pyramid's p3.
    torch.testing.assert_close(out["p3"], full(feats)["p3"])
    # Every parameter is used (what DistributedDataParallel requires without find_unused_parameters).
    out["p3"].sum().backward()
    assert all(p.grad is not None for p in finest.parameters())


def test_outputs_names_unknown_levels_and_refuses_extras():
    with pytest.raises(ValueError, match=r"outputs \['p6'\] are not among its input levels"):
        FPN(feature_info=INFO, extra_levels=0, outputs=["p6"])
    with pytest.raises(ValueError, match="extra_levels=0"):
        FPN(feature_info=INFO, extra_levels=1, outputs=["p3"])
