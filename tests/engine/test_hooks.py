import json
import logging
import math

import pytest
import torch
from torch import nn

from detkit.engine.hooks import (
    CheckpointHook,
    EarlyStoppingHook,
    EMAHook,
    EvalHook,
    JSONLinesHook,
    ModelEMA,
    ProgressHook,
    TensorBoardHook,
    flatten_metrics,
    lookup_metric,
)
from detkit.engine.hooks.lr import LRSchedulerHook
from detkit.engine.trainer import Trainer

from .toy import LinearDetector, ToyDataset, ToyDetector, make_loader


def _metrics(map50: float) -> dict:
    return {
        "coco": {"AP": map50 / 2, "AP50": map50},
        "voc07": {"mAP": map50},
        "voc12": {"mAP": map50, "per_class": {"cat": map50}},
    }


class ScriptedEval:
    """An evaluate_fn returning a fixed sequence of voc12 mAP values."""

    def __init__(self, values):
        self.values = list(values)
        self.calls = 0

    def __call__(self):
        value = self.values[self.calls]
        self.calls += 1
        return _metrics(value)


def _trainer(hooks, max_iters, model=None, ema=None):
    model = model or LinearDetector()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    return Trainer(
        model, optimizer, make_loader(ToyDataset(4)), ema=ema, hooks=hooks, max_iters=max_iters, device="cpu"
    )


def test_ema_update_math_by_hand():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEMA(model, decay=0.5, warmup=0)
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(2.0)  # 0.5 * 1 + 0.5 * 3
    with torch.no_grad():
        model.weight.fill_(5.0)
    ema.update(model)
    assert ema.module.weight.item() == pytest.approx(3.5)  # 0.5 * 2 + 0.5 * 5
    assert not ema.module.weight.requires_grad

    warm = ModelEMA(model, decay=0.9, warmup=1)  # starts at 5
    with torch.no_grad():
        model.weight.fill_(1.0)
    warm.update(model)
    d1 = 0.9 * (1 - math.exp(-1))  # = 0.56891...
    assert warm.current_decay() == pytest.approx(0.568908503)
    assert warm.module.weight.item() == pytest.approx(d1 * 5 + (1 - d1) * 1)


def test_ema_copies_integer_buffers_and_swaps_weights_in_and_out():
    model = ToyDetector()
    ema = ModelEMA(model, decay=0.9, warmup=0)
    model.train()
    model(torch.rand(2, 3, 8, 8), [{"labels": torch.tensor([1]), "boxes": torch.zeros(1, 4)}] * 2)
    with torch.no_grad():
        model.cls.weight.add_(1.0)
    ema.update(model)
    bn, ema_bn = model.features[1], ema.module.features[1]
    assert ema_bn.num_batches_tracked.item() == bn.num_batches_tracked.item() == 1
    assert torch.allclose(ema_bn.running_mean, 0.1 * bn.running_mean)  # was 0, moved by 1 - 0.9
    trained = model.cls.weight.detach().clone()
    with ema.applied_to(model):
        assert torch.equal(model.cls.weight, ema.module.cls.weight)
    assert torch.equal(model.cls.weight, trained)


def test_eval_hook_uses_ema_weights_and_returns_to_train_mode():
    model = LinearDetector()
    seen = []

    def evaluate():
        seen.append((model.training, model.linear.weight.detach().clone()))
        return _metrics(0.5)

    ema = ModelEMA(model, decay=0.99, warmup=0)
    trainer = _trainer([EvalHook(evaluate, every_iters=2), EMAHook()], max_iters=3, model=model, ema=ema)
    trainer.train()
    assert len(seen) == 2  # after iterations 2 and 3 (the last)
    training_flag, weights = seen[-1]
    assert not training_flag and model.training
    assert torch.equal(weights, ema.module.linear.weight)
    assert not torch.equal(model.linear.weight, ema.module.linear.weight)
    assert trainer.metrics["voc12"]["mAP"] == 0.5 and trainer.metrics_iter == 3


@pytest.mark.parametrize("hook, attribute", [(LRSchedulerHook, "scheduler"), (EMAHook, "ema")])
def test_lr_and_ema_hooks_refuse_a_trainer_without_its_own(hook, attribute):
    trainer = _trainer([hook()], max_iters=2)
    with pytest.raises(ValueError, match=rf"pass Trainer\({attribute}="):
        trainer.train()
    assert trainer.iters_done == 0


def test_early_stopping_after_patience_evaluations(tmp_path):
    evaluate = ScriptedEval([0.1, 0.3, 0.2, 0.25, 0.3, 0.9, 0.9])
    checkpoints = CheckpointHook(tmp_path, period=100)
    trainer = _trainer(
        [EarlyStoppingHook("voc12.mAP", patience=3), checkpoints, EvalHook(evaluate, every_iters=1)],
        max_iters=20,
    )
    trainer.train()
    # Improvements at evaluations 1 and 2; 0.2, 0.25 and 0.3 (not better than 0.3) make three misses.
    assert evaluate.calls == 5 and trainer.iters_done == 5
    assert "voc12.mAP" in trainer.stop_reason and "0.3000" in trainer.stop_reason
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["iteration"] == 5  # saved at the end, although the period was not reached
    assert last["extra"]["trainer"]["hooks"]["EarlyStoppingHook"]["evals_without_improvement"] == 3


def test_best_checkpoint_follows_the_metric(tmp_path):
    evaluate = ScriptedEval([0.1, 0.4, 0.2])
    trainer = _trainer(
        [CheckpointHook(tmp_path, period=4, metric_key="voc12.mAP"), EvalHook(evaluate, every_iters=2)],
        max_iters=6,
    )
    trainer.train()
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert best["iteration"] == 4 and last["iteration"] == 6
    assert best["extra"]["trainer"]["hooks"]["CheckpointHook"]["best"] == {
        "key": "voc12.mAP",
        "best": 0.4,
        "best_iter": 4,
    }


def test_unknown_metric_key_lists_the_available_ones():
    with pytest.raises(KeyError, match=r"Did you mean voc12\.mAP.*coco\.AP50"):
        lookup_metric(_metrics(0.5), "voc12.map")
    assert flatten_metrics(_metrics(0.5), sep="/")["voc12/per_class/cat"] == 0.5


def test_tensorboard_and_jsonl_logs_are_written(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    evaluate = ScriptedEval([0.2, float("nan")])
    hooks = [
        TensorBoardHook(tmp_path / "tb", every_iters=2),
        JSONLinesHook(tmp_path / "scalars.jsonl", every_iters=2),
        EvalHook(evaluate, every_iters=3),
    ]
    _trainer(hooks, max_iters=6).train()

    records = [json.loads(line) for line in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["iter"] for r in train] == [2, 4, 6]
    assert {"loss_box", "total_loss", "lr", "images_per_s", "data_time"} <= set(train[0])
    assert [r["iter"] for r in evals] == [3, 6]
    assert evals[0]["metrics"]["voc12"]["mAP"] == 0.2 and evals[1]["metrics"]["voc12"]["mAP"] is None

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {
        "train/loss_box",
        "train/lr",
        "eval/voc12/mAP",
        "eval/coco/AP50",
        "eval/voc12/per_class/cat",
    } <= set(tags)
    assert [e.step for e in events.Scalars("train/loss_box")] == [2, 4, 6]
    assert events.Scalars("eval/voc07/mAP")[0].value == pytest.approx(0.2)


def test_progress_hook_logs_losses_lr_and_eta(caplog):
    with caplog.at_level(logging.INFO, logger="detkit"):
        _trainer([ProgressHook(log_every=2, bar=False)], max_iters=4).train()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("iter ")]
    assert len(lines) == 2 and lines[-1].startswith("iter 4/4")
    assert (
        "loss_box" in lines[-1]
        and "lr 0.01" in lines[-1]
        and "images/s" in lines[-1]
        and "eta 0:00:00" in lines[-1]
    )
    assert "Training finished at iteration 4/4" in caplog.text
