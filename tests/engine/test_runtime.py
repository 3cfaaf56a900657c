"""The GPU defaults decided from the config and the device: autocast dtype, cuDNN autotuning and
TF32, the fused optimizer, and torch.compile of backbone and neck. CUDA is faked where only the
decision is tested; nothing here needs a GPU."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from detkit.engine.build import ConfigError, build_model, build_optimizer, load_config
from detkit.engine.runtime import (
    amp_dtype,
    amp_setting,
    backend_switches,
    compile_model,
    configure_backends,
    fused_optimizer_kwargs,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _cfg(**engine):
    return OmegaConf.create({"engine": engine})


@pytest.mark.parametrize("bf16", [True, False])
def test_amp_auto_is_bf16_where_the_gpu_has_it_and_off_elsewhere(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert amp_dtype(_cfg(amp="auto"), CUDA) == (torch.bfloat16 if bf16 else None)
    assert amp_dtype(_cfg(), CUDA) == (torch.bfloat16 if bf16 else None)  # auto is the default
    assert amp_dtype(_cfg(amp=True), CUDA) == (torch.bfloat16 if bf16 else torch.float16)
    assert amp_dtype(_cfg(amp=False), CUDA) is None


@pytest.mark.parametrize("native", [True, False])
def test_amp_on_the_cpu_is_bf16_only_when_asked_and_the_cpu_has_bf16_instructions(monkeypatch, native):
    import detkit.engine.runtime as runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    assert amp_dtype(_cfg(amp=True), CPU) == (torch.bfloat16 if native else None)
    # auto stays float32 on a CPU: bf16 slowed the default experiment's small model (64 against 90 images/s).
    assert amp_dtype(_cfg(amp="auto"), CPU) is None
    assert amp_dtype(_cfg(amp=False), CPU) is None


def test_amp_setting_reads_strings_and_refuses_others():
    assert amp_setting(_cfg(amp="True")) is True and amp_setting(_cfg(amp="AUTO")) == "auto"
    for bad in ("fp16", 1, None):
        with pytest.raises(ConfigError, match="engine.amp"):
            amp_setting(_cfg(amp=bad))


def test_the_shipped_engine_defaults_turn_the_gpu_switches_on():
    cfg = load_config([])
    assert cfg.engine.amp == "auto" and cfg.engine.compile is False
    assert backend_switches(cfg, CUDA) == {"cudnn_benchmark": True, "tf32": True}
    assert backend_switches(cfg, CPU) == {"cudnn_benchmark": False, "tf32": False}
    assert backend_switches(_cfg(cudnn_benchmark=False, tf32=False), CUDA) == {"cudnn_benchmark": False, "tf32": False}


def test_configure_backends_leaves_a_cpu_run_alone():
    before = (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    configure_backends(_cfg(cudnn_benchmark=True, tf32=True), CPU)
    assert (
        torch.backends.cudnn.benchmark,
        torch.get_float32_matmul_precision(),
        torch.backends.cudnn.allow_tf32,
    ) == before


def test_configure_backends_on_cuda_sets_cudnn_and_tf32(monkeypatch):
    # The flags are process-wide settings that exist on CPU builds too; restore them afterwards.
    before = (torch.backends.cudnn.benchmark, torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    try:
        configure_backends(_cfg(), CUDA)
        assert torch.backends.cudnn.benchmark is True
        assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32 is True
        configure_backends(_cfg(cudnn_benchmark=False, tf32=False), CUDA)
        assert torch.backends.cudnn.benchmark is False and torch.get_float32_matmul_precision() == "highest"
    finally:
        torch.backends.cudnn.benchmark = before[0]
        torch.set_float32_matmul_precision(before[1])
        torch.backends.cudnn.allow_tf32 = before[2]


def test_fused_optimizer_on_cuda_only_and_only_where_accepted():
    assert fused_optimizer_kwargs(_cfg(), torch.optim.SGD, CUDA) == {"fused": True}
    assert fused_optimizer_kwargs(_cfg(), torch.optim.AdamW, CUDA) == {"fused": True}
    assert fused_optimizer_kwargs(_cfg(), torch.optim.SGD, CPU) == {}
    assert fused_optimizer_kwargs(_cfg(fused_optimizer=False), torch.optim.SGD, CUDA) == {}
    assert fused_optimizer_kwargs(_cfg(), torch.optim.LBFGS, CUDA) == {}  # has no fused kernel


def test_build_optimizer_passes_fused_through_the_config_partial():
    cfg = load_config(["config=ssd_resnet18_shapes", "model.backbone.pretrained=false"])
    model = build_model(cfg, num_classes=5)
    assert not build_optimizer(cfg, model, CPU).defaults.get("fused")
    # torch accepts fused=True at construction for CPU parameters too, so the CUDA decision can be
    # checked here; the step itself then runs fused on the GPU.
    assert build_optimizer(cfg, model, CUDA).defaults["fused"] is True


def test_compile_backbone_and_neck_in_place_keeps_checkpoint_keys_and_losses():
    cfg = load_config(["config=ssd_resnet18_shapes", "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=5).train()
    keys = list(model.state_dict())
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1]), "image_id": i} for i in range(2)
    ]
    eager = model(images, targets)
    # The "eager" backend runs the compiler's graph capture without code generation: it checks
    # the wiring in a second (inductor's code generation takes minutes on a shared 2-core CPU).
    assert compile_model(model, backend="eager") == ["backbone", "neck"]
    assert list(model.state_dict()) == keys  # in place: no "_orig_mod." prefixes in checkpoints
    compiled = model(images, targets)
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name])
    sum(compiled.values()).backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)


def test_compile_refuses_a_model_without_backbone_or_neck():
    with pytest.raises(ConfigError, match="backbone or neck"):
        compile_model(torch.nn.Linear(2, 2), backend="eager")


@pytest.mark.slow
def test_compile_with_inductor_runs_a_training_step_on_the_cpu():
    # The real backend (C++ code generation on a CPU): minutes on a shared 2-core box, hence slow.
    cfg = load_config(["config=ssd_resnet18_shapes", "model.backbone.pretrained=false"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=5).train()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0]]), "labels": torch.tensor([1]), "image_id": i} for i in range(2)
    ]
    eager = model(images, targets)
    compile_model(model)
    compiled = model(images, targets)
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-4, atol=1e-4)
    sum(compiled.values()).backward()
