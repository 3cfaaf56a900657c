"""CUDA-only checks: AMP (float16 with a gradient scaler, bfloat16 without) and exact resume."""

import pytest
import torch

from detkit.engine.hooks import (
    CheckpointHook,
    EMAHook,
    HookBase,
    LRSchedulerHook,
    ModelEMA,
    build_lr_scheduler,
)
from detkit.engine.trainer import Trainer
from detkit.utils.seeding import seed_everything

from .toy import ToyDataset, ToyDetector, make_loader

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


class LossLog(HookBase):
    def __init__(self):
        self.losses = []

    def after_step(self):
        self.losses.append(self.trainer.storage["total_loss"])


def _build(tmp_path, max_iters, *, amp_dtype=torch.float16, seed=0, clip=1.0):
    seed_everything(seed, deterministic=True)
    model = ToyDetector(dropout=0.2).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = build_lr_scheduler(optimizer, "cosine", max_iters=20, warmup_iters=2)
    log = LossLog()
    hooks = [LRSchedulerHook(), EMAHook(), CheckpointHook(tmp_path, period=5), log]
    loader = make_loader(ToyDataset(12, augment=True), batch_size=2, shuffle=True, pin_memory=True)
    trainer = Trainer(
        model,
        optimizer,
        loader,
        scheduler=scheduler,
        ema=ModelEMA(model, decay=0.9, warmup=0),
        hooks=hooks,
        max_iters=max_iters,
        device="cuda",
        amp=True,
        amp_dtype=amp_dtype,
        grad_clip_norm=clip,
        grad_accum_steps=2,
    )
    return trainer, log


def test_fp16_amp_uses_a_scaler_and_the_loss_falls(tmp_path):
    trainer, log = _build(tmp_path, 20)
    assert trainer.amp_enabled and trainer.scaler.is_enabled()
    trainer.train()
    assert sum(log.losses[-4:]) < 0.8 * sum(log.losses[:4])
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["scaler"]["scale"] == trainer.scaler.get_scale()
    assert checkpoint["model"]["cls.weight"].device.type == "cpu"  # loads on machines without a GPU
    assert len(checkpoint["rng_states"][0]["cuda"]) == torch.cuda.device_count()
    assert trainer.model.cls.weight.dtype == torch.float32  # autocast keeps master weights in fp32


def test_bf16_amp_needs_no_scaler(tmp_path):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("no bfloat16 on this GPU")
    trainer, log = _build(tmp_path, 10, amp_dtype=torch.bfloat16)
    assert trainer.amp_enabled and not trainer.scaler.is_enabled()
    trainer.train()
    assert all(torch.isfinite(torch.tensor(log.losses)))
    assert torch.load(tmp_path / "last.pt", weights_only=True)["scaler"] is None


def test_fp16_resume_on_cuda_is_exact(tmp_path):
    continuous, continuous_log = _build(tmp_path / "a", 10)
    continuous.train()
    first, _ = _build(tmp_path / "b", 5)
    first.train()
    resumed, resumed_log = _build(tmp_path / "b", 10, seed=99)
    resumed.resume(tmp_path / "b" / "last.pt")
    assert resumed.scaler.get_scale() == first.scaler.get_scale()
    resumed.train()
    assert resumed_log.losses == continuous_log.losses[5:]
    for name, value in continuous.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert resumed.scaler.get_scale() == continuous.scaler.get_scale()
