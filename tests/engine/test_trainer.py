import logging

import pytest
import torch

from detkit.engine.hooks import HookBase
from detkit.engine.trainer import Trainer, learning_rates

from .toy import LinearDetector, ToyDataset, ToyDetector, make_loader


class Recorder(HookBase):
    """Keeps a copy of trainer.storage after every step."""

    def __init__(self, priority: int = 60) -> None:
        self.priority = priority
        self.history: list[dict] = []
        self.calls: list[str] = []

    def before_train(self):
        self.calls.append("before_train")

    def after_step(self):
        self.history.append(dict(self.trainer.storage, iter=self.trainer.iter, epoch=self.trainer.epoch))

    def after_train(self):
        self.calls.append("after_train")


def test_loss_falls_over_a_short_run():
    torch.manual_seed(0)
    model = ToyDetector()
    recorder = Recorder()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        make_loader(ToyDataset(12), batch_size=4, shuffle=True),
        hooks=[recorder],
        max_iters=45,
        device="cpu",
    )
    trainer.train()
    losses = [h["total_loss"] for h in recorder.history]
    assert len(losses) == 45
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first
    assert recorder.history[0]["total_loss"] == pytest.approx(
        recorder.history[0]["loss_cls"] + recorder.history[0]["loss_box"]
    )
    # 12 images / batch 4 = 3 iterations per epoch.
    assert [h["epoch"] for h in recorder.history[:7]] == [0, 0, 0, 1, 1, 1, 2]
    assert recorder.history[-1]["images_per_s"] > 0 and recorder.history[-1]["data_time"] >= 0
    assert recorder.calls == ["before_train", "after_train"]
    assert trainer.iters_done == 45 and trainer.iter == 45


def test_non_finite_loss_names_key_iteration_and_image_ids():
    model = ToyDetector()
    # Batch 0 is images 0, 1; batch 1 is images 2, 3 and image 3 has a NaN box.
    loader = make_loader(ToyDataset(8, nan_box_index=3), batch_size=2, shuffle=False)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), loader, max_iters=4, device="cpu")
    with pytest.raises(FloatingPointError) as err:
        trainer.train()
    message = str(err.value)
    assert "loss_box" in message and "loss_cls" not in message.split(" at ")[0]
    assert "iteration 1" in message
    assert "[102, 103]" in message
    assert trainer.failed


def test_a_non_finite_loss_is_caught_after_backward_and_before_the_optimizer_step():
    # Accumulation over two batches: images 2, 3 (with the NaN box) are the second micro-batch.
    # The loss values are read once, after both backward passes; the weights must stay untouched.
    model = ToyDetector()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loader = make_loader(ToyDataset(8, nan_box_index=3), batch_size=2, shuffle=False)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), loader, max_iters=2, device="cpu",
                      grad_accum_steps=2)  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"loss_box.* at iteration 0 .*\[102, 103\]"):
        trainer.train()
    assert all(torch.equal(p, before[name]) for name, p in model.named_parameters())
    assert any(p.grad is not None for p in model.parameters()), "backward ran before the check"


def _linear_trainer(batch_size: int, accum: int, lr: float = 0.1, clip=None):
    torch.manual_seed(0)
    model = LinearDetector()
    loader = make_loader(ToyDataset(8), batch_size=batch_size, shuffle=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    return Trainer(
        model, optimizer, loader, max_iters=1, device="cpu", grad_accum_steps=accum, grad_clip_norm=clip
    )


def test_grad_accumulation_matches_the_larger_batch():
    accumulated = _linear_trainer(batch_size=2, accum=2)
    large = _linear_trainer(batch_size=4, accum=1)
    before = accumulated.model.linear.weight.detach().clone()
    assert torch.equal(before, large.model.linear.weight)
    accumulated.run_step()
    large.run_step()
    assert not torch.allclose(before, accumulated.model.linear.weight)
    for a, b in zip(accumulated.model.parameters(), large.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert accumulated.storage["loss_box"] == pytest.approx(large.storage["loss_box"], rel=1e-5)
    assert "aux_not_a_loss" not in accumulated.storage
    assert accumulated._data.consumed == 2 and large._data.consumed == 1


def _param_vector(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_gradient_clipping_bounds_the_update_norm():
    # Plain SGD with lr=1 moves the parameters by exactly the (clipped) gradient.
    clipped = _linear_trainer(batch_size=4, accum=1, lr=1.0, clip=0.5)
    before = _param_vector(clipped.model)
    clipped.run_step()
    raw_norm = clipped.storage["grad_norm"]
    assert raw_norm > 0.5  # otherwise clipping would not be exercised
    assert (_param_vector(clipped.model) - before).norm().item() == pytest.approx(0.5, rel=1e-4)

    unclipped = _linear_trainer(batch_size=4, accum=1, lr=1.0, clip=None)
    before = _param_vector(unclipped.model)
    unclipped.run_step()
    assert (_param_vector(unclipped.model) - before).norm().item() == pytest.approx(raw_norm, rel=1e-4)


def _one_step_cpu_trainer(model, **amp) -> Trainer:
    return Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), make_loader(ToyDataset(4)), max_iters=1, device="cpu", **amp
    )


def test_amp_on_cpu_runs_bf16_and_refuses_fp16_with_a_note(caplog):
    with caplog.at_level(logging.INFO, logger="detkit"):
        trainer = _one_step_cpu_trainer(LinearDetector(), amp=True)
    # float16 autocast (the default amp_dtype) is CUDA's: on the CPU it is noted and float32 used.
    assert not trainer.amp_enabled and not trainer.scaler.is_enabled()
    assert "AMP" in caplog.text and "float32" in caplog.text
    trainer.train()
    assert trainer.model.linear.weight.dtype == torch.float32

    seen = []
    model = LinearDetector()
    model.linear.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    trainer = _one_step_cpu_trainer(model, amp=True, amp_dtype=torch.bfloat16)
    assert trainer.amp_enabled and not trainer.scaler.is_enabled()  # bf16 needs no gradient scaler
    trainer.train()
    # The linear layer ran in bfloat16 under autocast; the weights it updates stay float32.
    assert seen == [torch.bfloat16] and trainer.model.linear.weight.dtype == torch.float32


def test_hooks_run_in_priority_order_and_can_stop_training():
    order = []

    class Named(HookBase):
        def __init__(self, name, priority):
            self.name, self.priority = name, priority

        def after_step(self):
            order.append(self.name)
            if self.name == "stopper" and self.trainer.iters_done == 2:
                self.trainer.request_stop("enough")

    model = LinearDetector()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        make_loader(ToyDataset(4)),
        hooks=[Named("late", 60), Named("stopper", 40), Named("early", 10)],
        max_iters=10,
        device="cpu",
    )
    trainer.train()
    assert order[:3] == ["early", "stopper", "late"]
    assert trainer.iters_done == 2 and trainer.stop_reason == "enough"


def test_bad_batches_and_bad_model_outputs_get_clear_errors():
    model = LinearDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(TypeError, match=r"\(images, targets\) pairs"):
        Trainer(model, optimizer, [torch.zeros(2, 3, 8, 8)], max_iters=1, device="cpu").train()

    empty = make_loader(ToyDataset(1), batch_size=2, drop_last=True)
    with pytest.raises(RuntimeError, match="no batches"):
        Trainer(model, optimizer, empty, max_iters=1, device="cpu").train()

    class EvalOutput(torch.nn.Module):
        def forward(self, images, targets):
            return [{"boxes": torch.zeros(0, 4)}]

    with pytest.raises(TypeError, match="dict of losses"):
        Trainer(EvalOutput(), optimizer, make_loader(ToyDataset(2)), max_iters=1, device="cpu").train()

    with pytest.raises(TypeError, match="HookBase"):
        Trainer(model, optimizer, make_loader(ToyDataset(2)), hooks=[print], max_iters=1, device="cpu")

    with pytest.raises(ValueError, match="max_iters"):
        Trainer(model, optimizer, make_loader(ToyDataset(2)), max_iters=0, device="cpu")


def test_set_epoch_is_called_once_per_data_pass():
    from detkit.engine.dist import distributed_sampler

    dataset = ToyDataset(4)
    sampler = distributed_sampler(dataset, shuffle=True, seed=3)
    epochs = []
    original = sampler.set_epoch
    sampler.set_epoch = lambda e: (epochs.append(e), original(e))
    model = LinearDetector()
    loader = make_loader(dataset, batch_size=2, sampler=sampler)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), loader, max_iters=5, device="cpu")
    trainer.train()
    assert epochs == [0, 1, 2]  # 2 batches per pass, 5 iterations


def test_every_parameter_groups_learning_rate_is_logged_when_they_differ():
    model = ToyDetector()
    head, rest = list(model.parameters())[:1], list(model.parameters())[1:]
    optimizer = torch.optim.SGD([{"params": head, "lr": 0.1}, {"params": rest, "lr": 0.01}], lr=0.1)
    trainer = Trainer(model, optimizer, make_loader(ToyDataset(4)), max_iters=1, device="cpu")
    trainer.train()
    assert trainer.storage["lr"] == 0.1 and trainer.storage["lr_group1"] == 0.01
    same = torch.optim.SGD([{"params": head}, {"params": rest}], lr=0.05)
    assert learning_rates(same) == {"lr": 0.05}


class CountingHook(HookBase):
    def __init__(self, key: str | None = None) -> None:
        self.count, self.key = 0, key

    @property
    def state_key(self) -> str:
        return self.key or super().state_key

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state):
        self.count = state["count"]


def test_hook_state_is_saved_by_name_so_reordered_hooks_resume():
    model = ToyDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    first, second = CountingHook("first"), CountingHook("second")
    first.count, second.count = 3, 7
    saved = Trainer(model, optimizer, make_loader(ToyDataset(4)), hooks=[first, second], max_iters=1,
                    device="cpu").state_dict()  # fmt: skip
    assert saved["hooks"] == {"first": {"count": 3}, "second": {"count": 7}}
    again_first, again_second = CountingHook("first"), CountingHook("second")
    Trainer(model, optimizer, make_loader(ToyDataset(4)), hooks=[again_second, again_first], max_iters=1,
            device="cpu").load_state_dict(saved)  # fmt: skip
    assert (again_first.count, again_second.count) == (3, 7)
    # Two hooks of one class saving under one name would overwrite each other: refused, named.
    twins = Trainer(model, optimizer, make_loader(ToyDataset(4)), hooks=[CountingHook(), CountingHook()],
                    max_iters=1, device="cpu")  # fmt: skip
    with pytest.raises(ValueError, match="two hooks save their state under 'CountingHook'"):
        twins.state_dict()
