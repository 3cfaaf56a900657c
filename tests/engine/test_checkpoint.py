import os
import random

import numpy as np
import pytest
import torch

from detkit.engine import checkpoint as ckpt_module
from detkit.engine.checkpoint import (
    load_checkpoint,
    load_model_weights,
    read_checkpoint,
    save_checkpoint,
    strip_wrapper_prefixes,
)
from detkit.engine.hooks import ModelEMA, build_lr_scheduler

from .toy import ToyDetector


def _objects(num_classes=3):
    model = ToyDetector(num_classes=num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = build_lr_scheduler(optimizer, "cosine", max_iters=10, warmup_iters=2)
    # One real step so the optimizer has per-parameter state to save.
    model.features[0].weight.sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler, ModelEMA(model, decay=0.9, warmup=0)


def _save(path, model, optimizer, scheduler, ema, **overrides):
    kwargs = dict(
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=None,
        ema=ema,
        iteration=7,
        epoch=1,
        config_yaml="model:\n  name: toy\n",
        class_names=["a", "b", "c"],
        extra={"note": "x"},
    )
    kwargs.update(overrides)
    return save_checkpoint(path, **kwargs)


def test_checkpoint_is_plain_data_written_atomically(tmp_path):
    model, optimizer, scheduler, ema = _objects()
    path = _save(tmp_path / "run" / "last.pt", model, optimizer, scheduler, ema)
    assert sorted(os.listdir(path.parent)) == ["last.pt"]  # no temporary file left behind
    state = torch.load(path, weights_only=True)
    assert state["format"] == "detkit-checkpoint" and state["iteration"] == 7 and state["epoch"] == 1
    assert state["class_names"] == ["a", "b", "c"] and state["config_yaml"].startswith("model:")
    assert torch.equal(state["model"]["cls.weight"], model.cls.weight)
    assert state["optimizer"]["state"][0]["exp_avg"].shape == model.features[0].weight.shape
    assert state["scheduler"]["last_epoch"] == 1 and state["ema"]["updates"] == 0
    rng = state["rng_states"][0]
    assert (
        rng["torch"].dtype == torch.uint8
        and isinstance(rng["numpy"][1], list)
        and isinstance(rng["python"][1], list)
    )


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model, optimizer, scheduler, ema = _objects()
    path = _save(tmp_path / "last.pt", model, optimizer, scheduler, ema)
    original = path.read_bytes()

    def crash(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _save(path, model, optimizer, scheduler, ema, iteration=8)
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["last.pt"]


def test_load_restores_every_state_and_the_rng(tmp_path):
    model, optimizer, scheduler, ema = _objects()
    ema.update(model)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    path = _save(tmp_path / "c.pt", model, optimizer, scheduler, ema)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())

    fresh_model, fresh_opt, fresh_sched, fresh_ema = _objects()
    fresh_ema_model = ModelEMA(fresh_model, decay=0.9, warmup=0)
    info = load_checkpoint(
        path, model=fresh_model, optimizer=fresh_opt, scheduler=fresh_sched, ema=fresh_ema_model
    )
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert (
        info["iteration"] == 7 and info["class_names"] == ["a", "b", "c"] and info["extra"] == {"note": "x"}
    )
    for a, b in zip(model.state_dict().values(), fresh_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(
        fresh_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert fresh_sched.last_epoch == scheduler.last_epoch and fresh_ema_model.updates == 1
    assert torch.equal(fresh_ema_model.module.cls.weight, ema.module.cls.weight)


def test_clear_errors_for_missing_foreign_and_pickled_files(tmp_path):
    model = ToyDetector()
    _save(tmp_path / "best.pt", model, None, None, None)
    with pytest.raises(FileNotFoundError, match=r"lastt\.pt.*best\.pt"):
        load_checkpoint(tmp_path / "lastt.pt", model=model)

    torch.save({"weight": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a detkit checkpoint.*load_model_weights"):
        read_checkpoint(tmp_path / "foreign.pt")

    torch.save({"format": "detkit-checkpoint", "obj": ToyDetector()}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="pickled"):
        read_checkpoint(tmp_path / "pickled.pt")

    (tmp_path / "truncated.pt").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="could not be read"):
        read_checkpoint(tmp_path / "truncated.pt")

    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(
            tmp_path / "best.pt", model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1)
        )


def test_class_count_mismatch_lists_keys_and_suggests_fine_tuning(tmp_path):
    path = _save(tmp_path / "c.pt", ToyDetector(num_classes=3), None, None, None)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path, model=ToyDetector(num_classes=5))
    message = str(err.value)
    assert "cls.weight: checkpoint (4, 8) vs model (6, 8)" in message and "cls.bias" in message
    assert "3 classes" in message and "skip_mismatched=True" in message
    assert "features.0.weight" not in message


def test_load_model_weights_for_fine_tuning(tmp_path):
    source = ToyDetector(num_classes=3)
    path = _save(tmp_path / "c.pt", source, None, None, None)
    target = ToyDetector(num_classes=5)
    head_before = target.cls.weight.detach().clone()
    with pytest.raises(ValueError, match="cls.weight"):
        load_model_weights(path, target)
    report = load_model_weights(path, target, skip_mismatched=True)
    assert sorted(k.split(":")[0] for k in report["mismatched"]) == ["cls.bias", "cls.weight"]
    assert "features.0.weight" in report["loaded"] and report["missing"] == [] and report["unexpected"] == []
    assert torch.equal(target.features[0].weight, source.features[0].weight)
    assert torch.equal(target.cls.weight, head_before)


def test_ddp_prefixes_are_stripped_and_backbone_only_weights_load():
    source = ToyDetector()
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items() if k.startswith("features.")}
    assert next(iter(strip_wrapper_prefixes({"module._orig_mod.a": 1}))) == "a"
    target = ToyDetector()
    report = load_model_weights(wrapped, target)
    assert torch.equal(target.features[0].weight, source.features[0].weight)
    assert "cls.weight" in report["missing"] and report["mismatched"] == []
    with pytest.raises(ValueError, match="no tensor name matches"):
        load_model_weights({"backbone.conv.weight": torch.zeros(1)}, target)


def test_load_model_weights_can_take_the_ema_weights(tmp_path):
    model = ToyDetector()
    ema = ModelEMA(model, decay=0.5, warmup=0)
    with torch.no_grad():
        model.cls.weight.add_(1.0)
    ema.update(model)
    path = _save(tmp_path / "c.pt", model, None, None, ema)
    target = ToyDetector()
    load_model_weights(path, target, use_ema=True)
    assert torch.equal(target.cls.weight, ema.module.cls.weight)
    assert not torch.equal(target.cls.weight, model.cls.weight)
