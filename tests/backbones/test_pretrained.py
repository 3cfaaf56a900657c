"""Pretrained weights: local files in every format detkit accepts, the hub cache, and the offline errors."""

from __future__ import annotations

from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import torch.hub
import torchvision
from torchvision.models.vgg import cfgs, make_layers

from detkit.backbones import BACKBONES, build_backbone

RESNET18_FILE = "resnet18-f37072fd.pth"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache and a network that refuses every download; returns the hub dir."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(url: str, *args: object, **kwargs: object) -> None:
        raise URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return Path(torch.hub.get_dir())


def _random_state(name: str, **kwargs: object) -> dict[str, torch.Tensor]:
    model = build_backbone(name, out_features=("c3", "c4", "c5"), **kwargs)
    state = model.state_dict()
    with torch.no_grad():  # distinct values everywhere, BN statistics included (positive for variances)
        for value in state.values():
            if value.is_floating_point():
                value.uniform_(0.1, 1.0)
    return state


@pytest.mark.parametrize("name", BACKBONES.list())
@pytest.mark.parametrize("wrapping", ["plain", "state_dict", "model", "ddp"])
def test_local_file_round_trip(name: str, wrapping: str, tmp_path: Path) -> None:
    state = _random_state(name)
    saved = {
        "plain": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "optimizer": {"lr": 0.1}},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[wrapping]
    torch.save(saved, tmp_path / "weights.pth")
    # A shallower backbone takes its part of a full-network file.
    loaded = build_backbone(name, out_features=("c3",), pretrained=tmp_path / "weights.pth")
    own = loaded.state_dict()
    assert own and set(own) < set(state)
    for key, value in own.items():
        assert torch.equal(value, state[key]), key


def test_detector_checkpoint_seeds_the_backbone(tmp_path: Path) -> None:
    state = _random_state("mobilenet_v1")
    checkpoint = {"model": {**{f"backbone.{k}": v for k, v in state.items()}, "head.weight": torch.ones(3)}}
    torch.save(checkpoint, tmp_path / "detector.pth")
    loaded = build_backbone("mobilenet_v1", out_features=("c5",), pretrained=str(tmp_path / "detector.pth"))
    assert torch.equal(loaded.blocks[12].pointwise.weight, state["blocks.12.pointwise.weight"])


def test_resnet18_loads_a_torchvision_state_dict(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), tmp_path / RESNET18_FILE)  # includes fc.*, which is skipped
    loaded = build_backbone("resnet18", out_features=("c5",), pretrained=str(tmp_path / RESNET18_FILE))
    assert torch.equal(loaded.conv1.weight, reference.conv1.weight)
    assert torch.equal(loaded.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg16_loads_a_torchvision_state_dict(batch_norm: bool, tmp_path: Path) -> None:
    # The real file's classifier is 120M parameters; its keys are what matters (shapes are skipped).
    with torch.device("meta"):
        meta = (torchvision.models.vgg16_bn if batch_norm else torchvision.models.vgg16)()
    features = make_layers(cfgs["D"], batch_norm=batch_norm)
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    classifier_keys = [k for k in meta.state_dict() if k.startswith("classifier.")]
    assert set(meta.state_dict()) == set(state) | set(classifier_keys)  # torchvision's exact key set
    state |= {k: torch.zeros(2) for k in classifier_keys}
    torch.save(state, tmp_path / "vgg.pth")
    loaded = build_backbone(
        "vgg16", out_features=("c4",), batch_norm=batch_norm, pretrained=tmp_path / "vgg.pth"
    )
    last_conv = 40 if batch_norm else 28  # conv5_3
    assert torch.equal(loaded.features[last_conv].weight, features[last_conv].weight)


def test_wrong_architecture_lists_the_offending_keys(tmp_path: Path) -> None:
    torch.save(_random_state("vgg16", batch_norm=True), tmp_path / "vgg16_bn.pth")
    with pytest.raises(
        RuntimeError, match=r"vgg16_bn\.pth.*missing key.*unexpected key.*features\.1\.running_mean"
    ):
        build_backbone("vgg16", out_features=("c3",), pretrained=tmp_path / "vgg16_bn.pth")


def test_shape_mismatch_lists_key_and_shapes(tmp_path: Path) -> None:
    torch.save(_random_state("mobilenet_v1", width_mult=0.5), tmp_path / "half.pth")
    with pytest.raises(
        RuntimeError,
        match=r"half\.pth.*shape mismatch.*stem\.0\.weight: file \(16, 3, 3, 3\) vs model \(32, 3, 3, 3\)",
    ):
        build_backbone("mobilenet_v1", pretrained=tmp_path / "half.pth")


def test_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_backbone("resnet18", pretrained=tmp_path / "nowhere.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="garbage.pth"):
        build_backbone("resnet18", pretrained=tmp_path / "garbage.pth")
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pth")
    with pytest.raises(RuntimeError, match="no_tensors.pth holds no tensors"):
        build_backbone("resnet18", pretrained=tmp_path / "no_tensors.pth")


@pytest.mark.parametrize(
    "name,kwargs,file_name",
    [
        ("resnet18", {}, RESNET18_FILE),
        ("vgg16", {}, "vgg16-397923af.pth"),
        ("vgg16", {"batch_norm": True}, "vgg16_bn-6c64b313.pth"),
    ],
)
def test_imagenet_weights_offline_say_which_file_goes_where(
    offline: Path, name: str, kwargs: dict[str, object], file_name: str
) -> None:
    with pytest.raises(RuntimeError) as error:
        build_backbone(name, out_features=("c3",), pretrained=True, **kwargs)
    message = str(error.value)
    assert file_name in message
    assert str(offline / "checkpoints" / file_name) in message
    assert "pretrained=/path/to/" in message
    assert "network is unreachable" in message  # the refused download, not some other failure


def test_imagenet_weights_come_from_the_hub_cache_without_network(offline: Path) -> None:
    reference = torchvision.models.resnet18()
    (offline / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), offline / "checkpoints" / RESNET18_FILE)
    loaded = build_backbone("resnet18", pretrained=True)
    assert torch.equal(loaded.layer3[0].downsample[0].weight, reference.layer3[0].downsample[0].weight)


def test_mobilenet_imagenet_weights_missing_explain_where_to_put_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DETKIT_WEIGHTS", raising=False)
    with pytest.raises(RuntimeError) as error:
        build_backbone("mobilenet_v1", pretrained=True)
    message = str(error.value)
    assert str(tmp_path / "weights" / "mobilenet_v1.pth") in message and "DETKIT_WEIGHTS" in message
    with pytest.raises(RuntimeError, match="mobilenet_v1_0.5.pth"):
        build_backbone("mobilenet_v1", pretrained=True, width_mult=0.5)


@pytest.mark.parametrize("location", ["cwd", "env"])
def test_mobilenet_imagenet_weights_are_found(
    location: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / ("weights" if location == "cwd" else "elsewhere")
    folder.mkdir()
    state = _random_state("mobilenet_v1", width_mult=0.5)
    torch.save(state, folder / "mobilenet_v1_0.5.pth")
    monkeypatch.chdir(tmp_path)
    if location == "env":
        monkeypatch.setenv("DETKIT_WEIGHTS", str(folder))
    else:
        monkeypatch.delenv("DETKIT_WEIGHTS", raising=False)
    loaded = build_backbone("mobilenet_v1", pretrained=True, width_mult=0.5, out_features=("c5",))
    assert torch.equal(
        loaded.blocks[12].pointwise_bn.running_mean, state["blocks.12.pointwise_bn.running_mean"]
    )


def test_pretrained_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="pretrained"):
        build_backbone("mobilenet_v1", pretrained=1.0)
