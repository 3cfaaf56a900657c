import math

import pytest
import torch

from detkit.engine.hooks import HookBase, LRSchedulerHook, build_lr_lambda, build_lr_scheduler
from detkit.engine.trainer import Trainer

from .toy import LinearDetector, ToyDataset, make_loader


def test_warmup_then_cosine_values():
    f = build_lr_lambda("cosine", max_iters=110, warmup_iters=10, warmup_factor=0.1, final_factor=0.01)
    assert f(0) == pytest.approx(0.1)
    assert f(5) == pytest.approx(0.55)  # 0.1 + 0.9 * 5/10
    assert f(10) == pytest.approx(1.0)
    assert f(35) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi / 4)))  # 25/100 of the decay
    assert f(60) == pytest.approx(0.505)  # halfway: 0.01 + 0.99 / 2
    assert f(110) == pytest.approx(0.01)


def test_warmup_then_step_values():
    f = build_lr_lambda(
        "step", max_iters=100, warmup_iters=10, warmup_factor=0.001, milestones=[60, 80], gamma=0.1
    )
    assert f(0) == pytest.approx(0.001)
    assert f(5) == pytest.approx(0.5005)
    assert f(10) == pytest.approx(1.0)
    assert f(59) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.1)
    assert f(79) == pytest.approx(0.1)
    assert f(80) == pytest.approx(0.01)
    assert f(99) == pytest.approx(0.01)


def test_constant_without_warmup():
    f = build_lr_lambda("constant", max_iters=10)
    assert [f(i) for i in (0, 5, 9)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "linear"}, "step, cosine, constant"),
        ({"kind": "step", "milestones": [50, 20]}, "strictly increasing"),
        ({"kind": "step", "milestones": [100]}, "strictly increasing"),
        ({"kind": "cosine", "warmup_iters": 100}, "warmup_iters"),
        ({"kind": "cosine", "warmup_factor": 0.0}, "warmup_factor"),
        ({"kind": "cosine", "final_factor": 1.5}, "final_factor"),
    ],
)
def test_invalid_schedules_are_rejected(kwargs, message):
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=message):
        build_lr_lambda(kind, max_iters=100, **kwargs)


def test_hook_applies_the_schedule_per_iteration():
    model = LinearDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    scheduler = build_lr_scheduler(
        optimizer, "step", max_iters=8, warmup_iters=4, warmup_factor=0.5, milestones=[6], gamma=0.5
    )
    seen = []

    class LRSpy(HookBase):
        def after_step(self):
            seen.append(self.trainer.storage["lr"])

    trainer = Trainer(
        model,
        optimizer,
        make_loader(ToyDataset(4)),
        scheduler=scheduler,
        hooks=[LRSpy(), LRSchedulerHook()],
        max_iters=8,
        device="cpu",
    )
    assert trainer.scheduler is scheduler
    trainer.train()
    # warmup 0.5 -> 1 over 4 iterations, then 1 until the milestone at 6, then 0.5.
    expected = [0.2 * f for f in (0.5, 0.625, 0.75, 0.875, 1.0, 1.0, 0.5, 0.5)]
    assert seen == pytest.approx(expected)
    assert scheduler.last_epoch == 8
    # The closure is not stored: the state holds only plain data.
    assert scheduler.state_dict()["lr_lambdas"] == [None]
