import pytest
import torch

from detkit.engine.dist import distributed_sampler
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


class BatchLog(HookBase):
    def __init__(self):
        self.losses = []

    def after_step(self):
        self.losses.append(self.trainer.storage["total_loss"])


def _build(tmp_path, max_iters, loader_kind, seed=0):
    """Everything a run needs, built in a fixed order from ``seed`` (as tools/train.py would)."""
    seed_everything(seed)
    model = ToyDetector(dropout=0.3)  # dropout draws from the global RNG every step
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = build_lr_scheduler(optimizer, "cosine", max_iters=10, warmup_iters=3, warmup_factor=0.2)
    dataset = ToyDataset(8, augment=True)  # augmentation draws from the global RNG per sample
    if loader_kind == "shuffle":
        loader = make_loader(dataset, batch_size=2, shuffle=True)
    else:
        loader = make_loader(
            dataset, batch_size=2, sampler=distributed_sampler(dataset, shuffle=True, seed=0), num_workers=2
        )
    log = BatchLog()
    hooks = [LRSchedulerHook(), EMAHook(), CheckpointHook(tmp_path, period=5, class_names=["a", "b", "c"]), log]
    ema = ModelEMA(model, decay=0.9, warmup=2)
    trainer = Trainer(
        model, optimizer, loader, scheduler=scheduler, ema=ema, hooks=hooks, max_iters=max_iters, device="cpu"
    )
    return trainer, log


@pytest.mark.parametrize("loader_kind", ["shuffle", "distributed_sampler_with_workers"])
def test_resume_mid_epoch_is_exact(tmp_path, loader_kind):
    # 8 images / batch 2 = 4 batches per pass: the checkpoint at iteration 5 is mid-way through pass 1.
    continuous, continuous_log = _build(tmp_path / "continuous", 10, loader_kind)
    continuous.train()
    continuous_rng_end = torch.get_rng_state()

    first, _ = _build(tmp_path / "split", 5, loader_kind)
    first.train()
    assert (tmp_path / "split" / "last.pt").is_file()

    # New objects, built from a different global seed: every state must come from the checkpoint
    # (the sampler's own seed is configuration, the same in both runs).
    resumed, resumed_log = _build(tmp_path / "split", 10, loader_kind, seed=123)
    info = resumed.resume(tmp_path / "split" / "last.pt")
    assert info["iteration"] == 5 and info["epoch"] == 1 and resumed.iters_done == 5
    torch.rand(3)  # unrelated draws between resume() and train() must not matter
    resumed.train()
    resumed_rng_end = torch.get_rng_state()

    assert resumed_log.losses == continuous_log.losses[5:]
    for name, a in continuous.model.state_dict().items():
        assert torch.equal(a, resumed.model.state_dict()[name]), name
    for p_a, p_b in zip(continuous.model.parameters(), resumed.model.parameters(), strict=True):
        state_a, state_b = continuous.optimizer.state[p_a], resumed.optimizer.state[p_b]
        assert torch.equal(state_a["momentum_buffer"], state_b["momentum_buffer"])
    assert resumed.scheduler.state_dict() == continuous.scheduler.state_dict()
    assert resumed.ema.updates == continuous.ema.updates == 10
    for name, a in continuous.ema.module.state_dict().items():
        assert torch.equal(a, resumed.ema.module.state_dict()[name]), name
    # Both runs end with the same global RNG state: the resumed one restored it, then drew the same.
    assert torch.equal(resumed_rng_end, continuous_rng_end)


def test_resuming_a_finished_run_does_nothing(tmp_path):
    trainer, log = _build(tmp_path, 5, "shuffle")
    trainer.train()
    again, again_log = _build(tmp_path, 5, "shuffle")
    again.resume(tmp_path / "last.pt")
    again.train()
    assert again_log.losses == [] and again.iters_done == 5
