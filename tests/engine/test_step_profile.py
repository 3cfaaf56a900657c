"""Where a training step's time goes: the stage timer and the profile hook."""

from __future__ import annotations

import json
import time

import pytest
import torch

from detkit.engine.hooks import StepProfileHook
from detkit.engine.hooks.profile import format_stage_report
from detkit.engine.trainer import Trainer
from detkit.utils.stages import StageTimer, stage

from .toy import ToyDataset, ToyDetector, make_loader


def test_stage_timer_times_nested_paths_and_counts_a_repeated_name_once():
    with StageTimer() as timer:
        with stage("forward"):
            with stage("head"):
                time.sleep(0.02)
                with stage("head"):  # the same name inside itself: already counted by the outer range
                    time.sleep(0.01)
        with stage("backward"):
            time.sleep(0.01)
    assert set(timer.seconds) == {("forward",), ("forward", "head"), ("backward",)}
    assert timer.seconds[("forward",)] >= timer.seconds[("forward", "head")] >= 0.03
    assert timer.calls[("forward", "head")] == 1
    # Outside a timer a stage is a profiler range and records nothing here.
    with stage("forward"):
        pass
    assert timer.calls[("forward",)] == 1
    with StageTimer(), pytest.raises(RuntimeError, match="already active"):
        StageTimer().__enter__()


def test_profile_hook_reports_every_stage_of_the_step(tmp_path):
    model = ToyDetector()
    hook = StepProfileHook(tmp_path, start=2, steps=3)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), make_loader(ToyDataset(8)),
                      hooks=[hook], max_iters=8, device="cpu")  # fmt: skip
    trainer.train()
    report = json.loads((tmp_path / "step_profile.json").read_text())
    assert report == hook.report and report["steps"] == 3 and report["first_step"] == 2
    rows = {row["stage"]: row for row in report["rows"]}
    assert {"data", "forward", "backward", "read back", "optimizer", "other"} <= set(rows)
    top_level = sum(row["share"] for row in report["rows"] if row["depth"] == 0)
    assert top_level == pytest.approx(1.0, abs=0.01)  # the top-level stages and "other" make the whole step
    assert all(row["ms_per_step"] >= 0 for name, row in rows.items() if name != "other")
    text = (tmp_path / "step_profile.md").read_text()
    assert text.strip() == format_stage_report(report) and "| forward |" in text


def test_a_profile_longer_than_the_run_reports_the_steps_it_saw(tmp_path):
    model = ToyDetector()
    hook = StepProfileHook(tmp_path, start=1, steps=50)
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), make_loader(ToyDataset(8)), hooks=[hook],
            max_iters=4, device="cpu").train()  # fmt: skip
    assert hook.report["steps"] == 3
    with pytest.raises(ValueError, match="profile steps"):
        StepProfileHook(tmp_path, start=0, steps=0)


def test_a_two_stage_detector_labels_its_parts():
    from detkit.engine.build import build_model
    from detkit.engine.config import load_config

    torch.manual_seed(0)
    model = build_model(load_config(["config=rfcn_mobilenet_v1_shapes_quick", "data.input_size=96"]), num_classes=5)
    images = [torch.rand(3, 96, 96) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])} for _ in range(2)]
    with StageTimer() as timer:
        sum(model(images, targets).values()).backward()
    assert {("preprocess",), ("backbone",), ("proposals",), ("proposals", "assign"), ("head",),
            ("head", "assign")} <= set(timer.seconds)  # fmt: skip
