"""The course's backbones beyond the contract: torchvision weights load into them, any torchvision
classifier works by name (or is refused with the reason), and each one trains a detector."""

from __future__ import annotations

import pytest
import torch
import torchvision

from detkit.backbones import build_backbone
from detkit.backbones.googlenet import googlenet
from detkit.engine.build import build_model, load_config

NEW_BACKBONES = ("alexnet", "zfnet", "googlenet", "lenet", "torchvision")


def _targets(count: int) -> list[dict]:
    return [
        {"boxes": torch.tensor([[8.0, 12.0, 40.0, 50.0]]), "labels": torch.tensor([1 + i % 5]), "image_id": i}
        for i in range(count)
    ]


@pytest.mark.parametrize("name", NEW_BACKBONES)
def test_yolov1_trains_a_few_steps_on_each_new_backbone(name: str) -> None:
    torch.manual_seed(0)
    cfg = load_config(["config=yolov1_resnet18_shapes", f"model/backbone={name}", "model.head.hidden_channels=32"])
    model = build_model(cfg, num_classes=5).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    before = {n: p.detach().clone() for n, p in model.backbone.named_parameters()}
    for _ in range(2):
        losses = model(images, _targets(2))
        assert all(torch.isfinite(v) for v in losses.values()), losses
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert any(not torch.equal(before[n], p) for n, p in model.backbone.named_parameters())
    detections = model.eval()(images)
    assert len(detections) == 2 and detections[0]["boxes"].shape[1] == 4


def test_alexnet_loads_torchvision_keys(tmp_path) -> None:
    reference = torchvision.models.alexnet()
    path = tmp_path / "alexnet.pth"
    torch.save(reference.state_dict(), path)
    model = build_backbone("alexnet", out_features=("c3",), pretrained=str(path))
    # Truncated after conv2: its two convolutions are torchvision's features.0 and features.3.
    torch.testing.assert_close(model.features[3].weight, reference.features[3].weight)
    assert len(model.features) == 5


def test_googlenet_loads_torchvision_keys_and_transforms_the_input(tmp_path) -> None:
    reference = torchvision.models.GoogLeNet(aux_logits=True, init_weights=True)  # aux keys are skipped
    path = tmp_path / "googlenet.pth"
    torch.save(reference.state_dict(), path)
    model = googlenet(out_features=("c5",), pretrained=str(path), transform_input=True)
    torch.testing.assert_close(model.inception5b.branch1.conv.weight, reference.inception5b.branch1.conv.weight)
    # transform_input maps the detector's ImageNet-normalised input back to (x - 0.5) / 0.5.
    image = torch.rand(1, 3, 4, 4)
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    normalised = (image - mean) / std
    torch.testing.assert_close(normalised * model._input_scale + model._input_shift, (image - 0.5) / 0.5)


@pytest.mark.parametrize("arch", ["efficientnet_b0", "regnet_x_400mf", "shufflenet_v2_x0_5"])
def test_torchvision_classifier_by_name_follows_the_contract(arch: str) -> None:
    model = build_backbone("torchvision", arch=arch, out_features=("c3", "c4", "c5")).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 65, 97))
    for info in model.feature_info:
        assert out[info.name].shape[1:] == (info.channels, -(-65 // info.stride), -(-97 // info.stride))


def test_torchvision_frozen_stages_stay_in_inference_mode() -> None:
    # EfficientNet's stochastic depth would make a frozen stage random in train() mode.
    model = build_backbone("torchvision", arch="efficientnet_b0", out_features=("c3", "c4"), frozen_stages=2).train()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        first, second = model(images)["c3"], model(images)["c3"]
    torch.testing.assert_close(first, second)


def test_torchvision_state_dict_file_loads(tmp_path) -> None:
    reference = torchvision.models.get_model("mnasnet0_5")
    path = tmp_path / "mnasnet.pth"
    torch.save(reference.state_dict(), path)
    model = build_backbone("torchvision", arch="mnasnet0_5", out_features=("c4",), pretrained=str(path))
    torch.testing.assert_close(model.layers[0].weight, reference.layers[0].weight)


@pytest.mark.parametrize(
    "arch, message", [("squeezenet1_0", "features.0"), ("resnet_50", "unknown torchvision classifier")]
)
def test_unsuitable_or_unknown_torchvision_models_are_refused(arch: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_backbone("torchvision", arch=arch)


def test_torchvision_pretrained_never_downloads(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(RuntimeError, match="not in the torch hub cache"):
        build_backbone("torchvision", arch="mnasnet0_5", pretrained=True)
    assert not any(tmp_path.rglob("*.pth"))
