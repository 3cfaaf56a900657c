"""Each architecture against its reference: torchvision's networks, the MobileNet v1 paper, hand tables."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from detkit.backbones import build_backbone
from detkit.backbones.mobilenet import DepthwiseSeparableConv, scaled_channels

ALL = ("c3", "c4", "c5")


def _images(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def test_resnet18_features_equal_torchvision_layers() -> None:
    reference = torchvision.models.resnet18().eval()
    ours = build_backbone("resnet18", out_features=ALL).eval()
    # Same module names as torchvision: its state dict (minus the classifier) loads strictly.
    ours.load_state_dict({k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")})
    images = _images(2, 3, 64, 96)
    with torch.no_grad():
        out = ours(images)
        x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(images))))
        x = reference.layer1(x)
        expected = {}
        for name, layer in (("c3", reference.layer2), ("c4", reference.layer3), ("c5", reference.layer4)):
            x = expected[name] = layer(x)
    for name in ALL:
        torch.testing.assert_close(out[name], expected[name])


# Exclusive end index in torchvision's VGG-16 ``features`` of each output, counted by hand:
# without BN a conv is 2 layers (conv, ReLU), with BN 3; pools are 1. conv4_3's ReLU ends after
# 10 convs and 3 pools, conv5_3's after 13 convs and 4 pools, pool5 is the next layer.
VGG_ENDS = {False: {"c3": 23, "c4": 30, "c5": 31}, True: {"c3": 33, "c4": 43, "c5": 44}}


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg16_features_equal_torchvision_slices(batch_norm: bool) -> None:
    reference = make_layers(cfgs["D"], batch_norm=batch_norm).eval()
    ours = build_backbone("vgg16", out_features=ALL, batch_norm=batch_norm).eval()
    ours.load_state_dict({f"features.{k}": v for k, v in reference.state_dict().items()})
    images = _images(1, 3, 64, 64)
    with torch.no_grad():
        out = ours(images)
        for name in ALL:
            torch.testing.assert_close(out[name], reference[: VGG_ENDS[batch_norm][name]](images))
    assert isinstance(ours.features[VGG_ENDS[batch_norm]["c3"] - 1], nn.ReLU)


def _mobilenet_parameter_count(width_mult: float) -> int:
    """MobileNet v1 parameters by hand: convs have no bias, each BN adds 2 per channel."""

    def c(channels: int) -> int:
        return scaled_channels(channels, width_mult)

    plan = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    total = 3 * c(32) * 9 + 2 * c(32)
    previous = c(32)
    for out in map(c, plan):
        total += previous * 9 + 2 * previous + previous * out + 2 * out
        previous = out
    return total


@pytest.mark.parametrize("width_mult,paper_millions", [(1.0, 4.2), (0.75, 2.6), (0.5, 1.3), (0.25, 0.5)])
def test_mobilenet_size_matches_the_paper(width_mult: float, paper_millions: float) -> None:
    model = build_backbone("mobilenet_v1", out_features=("c5",), width_mult=width_mult)
    count = sum(p.numel() for p in model.parameters())
    assert count == _mobilenet_parameter_count(width_mult)
    # The paper's Table 6 counts the 1000-way ImageNet classifier too.
    classifier = model.feature_info[0].channels * 1000 + 1000
    assert round((count + classifier) / 1e6, 1) == paper_millions


def test_mobilenet_blocks_are_depthwise_separable() -> None:
    model = build_backbone("mobilenet_v1", out_features=("c5",))
    blocks = [m for m in model.modules() if isinstance(m, DepthwiseSeparableConv)]
    assert len(blocks) == 13
    strides = [b.depthwise.stride[0] for b in blocks]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    for block in blocks:
        channels = block.depthwise.in_channels
        assert block.depthwise.groups == channels == block.depthwise.out_channels
        assert tuple(block.depthwise.weight.shape) == (channels, 1, 3, 3)
        assert block.pointwise.groups == 1 and block.pointwise.kernel_size == (1, 1)
    assert [b.pointwise.out_channels for b in blocks][-1] == 1024


@pytest.mark.parametrize(
    "channels,width_mult,expected",
    [(256, 0.5, 128), (1024, 0.25, 256), (512, 0.75, 384), (256, 0.3, 80), (32, 0.3, 16), (32, 0.1, 8)],
)
def test_scaled_channels_rounds_to_multiples_of_eight(
    channels: int, width_mult: float, expected: int
) -> None:
    # 256 * 0.3 = 76.8 -> 80 (nearest multiple of 8); 32 * 0.3 = 9.6 -> 8 would lose 17 %, so 16.
    assert scaled_channels(channels, width_mult) == expected


@pytest.mark.parametrize("width_mult,expected", [(0.5, (128, 256, 512)), (0.25, (64, 128, 256))])
def test_width_mult_changes_output_channels(width_mult: float, expected: tuple[int, int, int]) -> None:
    model = build_backbone("mobilenet_v1", out_features=ALL, width_mult=width_mult).eval()
    assert tuple(f.channels for f in model.feature_info) == expected
    with torch.no_grad():
        out = model(_images(1, 3, 64, 64))
    assert tuple(out[name].shape[1] for name in ALL) == expected


@pytest.mark.parametrize("width_mult", [0, -0.5, float("nan")])
def test_bad_width_mult_is_rejected(width_mult: float) -> None:
    with pytest.raises(ValueError, match="width_mult"):
        build_backbone("mobilenet_v1", width_mult=width_mult)


def _vgg_conv_prefixes(indices: list[int]) -> set[str]:
    return {f"features.{i}." for i in indices}


# What frozen_stages=k freezes, written out by hand per architecture (prefixes of parameter names).
FROZEN_BY_STAGE = {
    "resnet18": [{"conv1.", "bn1."}, {"layer1."}, {"layer2."}, {"layer3."}, {"layer4."}],
    # conv1_1, conv1_2, conv2_1, conv2_2 | conv3_x | conv4_x | conv5_x | pool5 (no parameters)
    "vgg16": [
        _vgg_conv_prefixes([0, 2, 5, 7]),
        _vgg_conv_prefixes([10, 12, 14]),
        _vgg_conv_prefixes([17, 19, 21]),
        _vgg_conv_prefixes([24, 26, 28]),
        set(),
    ],
    "mobilenet_v1": [
        {"stem.", "blocks.0."},
        {"blocks.1.", "blocks.2."},
        {"blocks.3.", "blocks.4."},
        {f"blocks.{i}." for i in range(5, 11)},
        {"blocks.11.", "blocks.12."},
    ],
}


@pytest.mark.parametrize("name", sorted(FROZEN_BY_STAGE))
@pytest.mark.parametrize("frozen_stages", [1, 3])
def test_frozen_stages_freeze_exactly_the_stem_and_first_stages(name: str, frozen_stages: int) -> None:
    model = build_backbone(name, out_features=ALL, frozen_stages=frozen_stages)
    frozen_prefixes = tuple(p for group in FROZEN_BY_STAGE[name][: frozen_stages + 1] for p in group)
    names = [n for n, _ in model.named_parameters()]
    assert any(n.startswith(frozen_prefixes) for n in names)
    for param_name, param in model.named_parameters():
        assert param.requires_grad != param_name.startswith(frozen_prefixes), param_name
