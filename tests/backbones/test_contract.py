"""The backbone contract, checked for every registered backbone (a new one is covered automatically)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from detkit.backbones import BACKBONES, Backbone, build_backbone
from detkit.structures import FeatureInfo

ALL = ("c3", "c4", "c5")
# Extra keyword arguments that give a backbone BatchNorm layers (for the freeze_bn tests).
WITH_BN = {
    "vgg16": {"batch_norm": True},
    "alexnet": {"batch_norm": True},
    "zfnet": {"batch_norm": True},
    "lenet": {"batch_norm": True},
}


@pytest.fixture(params=BACKBONES.list())
def name(request: pytest.FixtureRequest) -> str:
    return request.param


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_three_backbones() -> None:
    assert {"vgg16", "resnet18", "mobilenet_v1"} <= set(BACKBONES.list())


def test_feature_info_matches_real_outputs(name: str) -> None:
    model = build_backbone(name, out_features=ALL).eval()
    assert isinstance(model, Backbone)
    assert [(f.name, f.stride) for f in model.feature_info] == [("c3", 8), ("c4", 16), ("c5", 32)]
    for height, width in [(64, 64), (64, 96), (65, 97)]:
        with torch.no_grad():
            out = model(_images(2, 3, height, width))
        assert list(out) == list(ALL)
        for info in model.feature_info:
            assert isinstance(info, FeatureInfo)
            # Odd sizes round up, the same way in every backbone.
            expected = (2, info.channels, math.ceil(height / info.stride), math.ceil(width / info.stride))
            assert tuple(out[info.name].shape) == expected, (info, height, width)


@pytest.mark.parametrize("subset", [("c3",), ("c5", "c3"), ("c4", "c5")])
def test_out_features_selects_exactly_those_outputs(name: str, subset: tuple[str, ...]) -> None:
    model = build_backbone(name, out_features=subset).eval()
    with torch.no_grad():
        out = model(_images(1, 3, 64, 64))
    ordered = sorted(subset)  # shallow to deep, whatever order was asked for
    assert list(out) == ordered
    assert [f.name for f in model.feature_info] == ordered


def test_default_is_c4_and_a_single_string_is_accepted(name: str) -> None:
    assert [f.name for f in build_backbone(name).feature_info] == ["c4"]
    assert [f.name for f in build_backbone(name, out_features="c3").feature_info] == ["c3"]


@pytest.mark.parametrize("bad,message", [(("c6",), "unknown"), ((), "empty"), (("c3", "c3"), "twice")])
def test_bad_out_features_are_rejected(name: str, bad: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_backbone(name, out_features=bad)


def test_stops_after_the_deepest_requested_output(name: str) -> None:
    shallow = build_backbone(name, out_features=("c3",)).eval()
    middle = build_backbone(name, out_features=("c4",)).eval()
    full = build_backbone(name, out_features=ALL).eval()
    # Deeper stages are not even built (VGG's c5 stage is a parameter-free pool, hence the module count).
    shallow_keys, middle_keys, full_keys = (set(m.state_dict()) for m in (shallow, middle, full))
    assert shallow_keys < middle_keys <= full_keys
    module_counts = [len(list(m.modules())) for m in (shallow, middle, full)]
    assert module_counts == sorted(set(module_counts))

    # Every weighted layer that was built runs exactly once: nothing is computed for nobody.
    calls: dict[str, int] = {}
    weighted = [(n, m) for n, m in shallow.named_modules() if list(m.parameters(recurse=False))]
    for module_name, module in weighted:
        module.register_forward_hook(
            lambda *_, key=module_name: calls.__setitem__(key, calls.get(key, 0) + 1)
        )
    shallow.load_state_dict({k: v for k, v in full.state_dict().items() if k in shallow_keys})
    images = _images(2, 3, 64, 64)
    with torch.no_grad():
        shallow_c3 = shallow(images)["c3"]
        full_c3 = full(images)["c3"]
    assert calls == {module_name: 1 for module_name, _ in weighted}
    # And the truncated network computes the same c3 as the full one.
    torch.testing.assert_close(shallow_c3, full_c3)


def test_gradient_reaches_every_parameter(name: str) -> None:
    model = build_backbone(name, out_features=ALL).train()
    out = model(_images(2, 3, 64, 64))
    sum(feature.square().mean() for feature in out.values()).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


def test_channels_last_input_gives_the_same_features(name: str) -> None:
    model = build_backbone(name, out_features=ALL).eval()
    images = _images(2, 3, 64, 96)
    with torch.no_grad():
        reference = model(images)
        model = model.to(memory_format=torch.channels_last)
        channels_last = model(images.contiguous(memory_format=torch.channels_last))
    for key in ALL:
        torch.testing.assert_close(channels_last[key], reference[key], rtol=1e-4, atol=1e-5)


def test_frozen_stages_stop_gradients_exactly_at_the_stage_boundary(name: str) -> None:
    images = _images(2, 3, 64, 64)
    # Stage 2 ends at c3: freezing stages 1..2 cuts every gradient path up to c3, but not beyond.
    model = build_backbone(name, out_features=ALL, frozen_stages=2).train()
    out = model(images)
    assert not out["c3"].requires_grad
    assert out["c4"].requires_grad and out["c5"].requires_grad
    # Frozen stages are in inference mode even while training: c3 equals its eval-mode value.
    with torch.no_grad():
        torch.testing.assert_close(out["c3"], model.eval()(images)["c3"])

    one_stage = build_backbone(name, out_features=ALL, frozen_stages=1).train()
    assert one_stage(images)["c3"].requires_grad

    everything = build_backbone(name, out_features=ALL, frozen_stages=4)
    assert not any(p.requires_grad for p in everything.parameters())
    assert all(p.requires_grad for p in build_backbone(name, out_features=ALL).parameters())


@pytest.mark.parametrize("frozen_stages", [-1, 5, 1.5])
def test_bad_frozen_stages_are_rejected(name: str, frozen_stages: object) -> None:
    with pytest.raises(ValueError, match="frozen_stages"):
        build_backbone(name, out_features=("c3",), frozen_stages=frozen_stages)


def _batchnorm_count(model: nn.Module) -> tuple[int, int]:
    modules = list(model.modules())
    return (
        sum(isinstance(m, nn.BatchNorm2d) for m in modules),
        sum(isinstance(m, FrozenBatchNorm2d) for m in modules),
    )


def test_freeze_bn_makes_training_mode_batch_independent(name: str) -> None:
    extra = WITH_BN.get(name, {})
    images = _images(3, 3, 64, 64)
    trainable = build_backbone(name, out_features=("c4",), **extra).train()
    plain_bn, _ = _batchnorm_count(trainable)
    assert plain_bn > 0, "the test needs a backbone variant with BatchNorm"
    with torch.no_grad():
        # Plain BatchNorm in train mode mixes the batch: image 0's features depend on its neighbours.
        assert not torch.allclose(trainable(images)["c4"][:1], trainable(images[:1])["c4"])

    frozen = build_backbone(name, out_features=("c4",), freeze_bn=True, **extra).train()
    assert _batchnorm_count(frozen) == (0, plain_bn)
    stats_before = {k: v.clone() for k, v in frozen.state_dict().items() if "running" in k}
    with torch.no_grad():
        together = frozen(images)["c4"]
        alone = frozen(images[:1])["c4"]
    torch.testing.assert_close(together[:1], alone)
    for key, value in frozen.state_dict().items():
        if key in stats_before:
            assert torch.equal(value, stats_before[key]), key
    # Frozen BN keeps its affine transform as buffers: nothing left for the optimizer to change.
    frozen_layers = [m for m in frozen.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert all(not list(m.parameters()) for m in frozen_layers)


def test_freeze_bn_keeps_the_eval_mode_function(name: str, tmp_path) -> None:
    extra = WITH_BN.get(name, {})
    reference = build_backbone(name, out_features=("c3",), **extra)
    # Give BN non-trivial statistics so the comparison means something.
    with torch.no_grad():
        reference.train()(_images(4, 3, 64, 64, seed=1))
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    frozen = build_backbone(name, out_features=("c3",), freeze_bn=True, pretrained=str(path), **extra)
    images = _images(2, 3, 64, 64, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(frozen.train()(images)["c3"], reference.eval()(images)["c3"])


def test_unknown_backbone_name_suggests_the_close_one() -> None:
    with pytest.raises(KeyError, match="resnet18"):
        build_backbone("resnet_18")
