import pytest
import torch
from torch import nn

from detkit.necks.ssd_extras import SSD300_EXTRAS, L2Norm, SSDExtras
from detkit.structures import FeatureInfo

VGG_INFO = [FeatureInfo("c3", 512, 8), FeatureInfo("c4", 512, 16)]


def test_ssd300_vgg_sources_have_the_papers_sizes_and_channels():
    torch.manual_seed(0)
    neck = SSDExtras(feature_info=VGG_INFO, l2_norm=["c3"], fc_layers=True, extras=SSD300_EXTRAS)
    # conv4_3 and conv5_3 of a 300x300 input (ceil-mode pooling): 38x38 and 19x19.
    features = {"c3": torch.randn(1, 512, 38, 38), "c4": torch.randn(1, 512, 19, 19)}
    with torch.no_grad():
        sources = neck(features)
    assert list(sources) == ["c3", "fc7", "extra1", "extra2", "extra3", "extra4"]
    assert [tuple(s.shape[1:]) for s in sources.values()] == [
        (512, 38, 38), (1024, 19, 19), (512, 10, 10), (256, 5, 5), (256, 3, 3), (256, 1, 1)
    ]  # fmt: skip
    assert [(i.name, i.channels) for i in neck.feature_info] == [
        ("c3", 512), ("fc7", 1024), ("extra1", 512), ("extra2", 256), ("extra3", 256), ("extra4", 256)
    ]  # fmt: skip
    fc6 = neck.fc[1]
    assert isinstance(neck.fc[0], nn.MaxPool2d) and neck.fc[0].stride == 1
    assert fc6.dilation == (6, 6) and fc6.kernel_size == (3, 3) and fc6.out_channels == 1024


def test_l2norm_scales_every_position_to_the_learnt_weight():
    norm = L2Norm(4, initial_scale=20.0)
    x = torch.randn(2, 4, 3, 3) * 100
    out = norm(x)
    torch.testing.assert_close(out.norm(dim=1), torch.full((2, 3, 3), 20.0))
    out.sum().backward()
    assert norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0


def test_resnet_style_sources_with_stride_two_extras_and_batchnorm():
    info = [FeatureInfo("c3", 16, 8), FeatureInfo("c4", 32, 16), FeatureInfo("c5", 64, 32)]
    neck = SSDExtras(feature_info=info, extras=[[8, 24, 2, 1], [8, 24, 2, 1]], batch_norm=True)
    features = {
        "c3": torch.randn(2, 16, 20, 20),
        "c4": torch.randn(2, 32, 10, 10),
        "c5": torch.randn(2, 64, 5, 5),
    }
    sources = neck(features)
    assert [tuple(s.shape[-2:]) for s in sources.values()] == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2)]
    assert sources["c4"] is features["c4"]  # untouched backbone outputs pass through
    assert [i.stride for i in neck.feature_info] == [8, 16, 32, 64, 128]
    assert any(isinstance(m, nn.BatchNorm2d) for m in neck.extras.modules())


def test_depthwise_extras_use_grouped_convolutions():
    neck = SSDExtras(feature_info=[FeatureInfo("c5", 32, 32)], extras=[[16, 24, 2, 1]], depthwise=True)
    grouped = [m for m in neck.extras.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(grouped) == 1 and grouped[0].groups == 16
    assert neck({"c5": torch.randn(1, 32, 4, 4)})["extra1"].shape == (1, 24, 2, 2)


def test_inputs_too_small_for_the_extras_and_bad_names_are_explained():
    neck = SSDExtras(
        feature_info=VGG_INFO,
        l2_norm=["c3"],
        fc_layers=True,
        fc_channels=8,
        extras=[[4, 8, 2, 1], [4, 8, 1, 0]],
    )
    features = {"c3": torch.randn(1, 512, 4, 4), "c4": torch.randn(1, 512, 2, 2)}
    with pytest.raises(ValueError, match="extra layer 2"):
        neck(features)
    with pytest.raises(ValueError, match="does not output"):
        SSDExtras(feature_info=VGG_INFO, l2_norm=["c5"])
    with pytest.raises(KeyError, match="missing"):
        neck({"c3": features["c3"]})
