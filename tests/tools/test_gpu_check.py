"""The GPU check's command line and report on a machine without a GPU: it refuses clearly, and its
summary and pytest parsing work on hand-made inputs. The check itself runs on a GPU only."""

from __future__ import annotations

import pytest
import torch

from detkit.analysis.device.gpu_check import format_markdown, pytest_counts
from detkit.cli import main


def test_without_cuda_it_refuses_with_one_error_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["gpu-check", f"output={tmp_path}"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err


def test_unknown_parts_and_arguments_are_named(capsys):
    assert main(["gpu-check", "parts=tests,speed"]) == 2
    assert "unknown part(s) speed" in capsys.readouterr().err
    assert main(["gpu-check", "engine.amp=false"]) == 2
    assert "engine.amp=false" in capsys.readouterr().err


def test_pytest_summary_counts():
    text = "....s\n===== 4 passed, 1 skipped, 812 deselected in 21.3s =====\n"
    assert pytest_counts(text) == {"passed": 4, "skipped": 1, "deselected": 812}
    assert pytest_counts("1 failed, 2 errors in 3s") == {"failed": 1, "errors": 2}
    assert pytest_counts("no tests ran") == {}


def test_markdown_summary_holds_every_number_and_marks_failures():
    report = {
        "card": "NVIDIA H200", "capability": "9.0", "bf16": True, "torch": "2.11.0", "torchvision": "0.26.0",
        "cuda": "13.0", "date": "2026-12-01 06:00 UTC", "total_seconds": 301.0,
        "tests": {"returncode": 0, "counts": {"passed": 7, "skipped": 1}, "log": "gpu_tests.log"},
        "parity": {
            "ssd": {"dtype": "bfloat16", "matched": 390, "compared": 400, "max_px": 0.25, "p95_px": 0.1,
                    "mean_px": 0.02, "ok": True},
            "yolov3": {"dtype": "bfloat16", "matched": 300, "compared": 400, "max_px": 3.5, "p95_px": 1.2,
                       "mean_px": 0.3, "ok": False},
            "rcnn": {"error": "RuntimeError: out of memory"},
        },
        "syncs": {"faster_rcnn": {"batch_size": 8, "autocast": "bfloat16", "per_step": 2.0,
                                  "where": {"detkit/engine/trainer.py:230": 3, "detkit/heads/rpn.py:99": 3}}},
        "benchmarks": {"ssd300": {"ratios_detkit_over_peer": {"train_images_per_s": 1.61},
                                  "results": {"detkit ssd": {"train_images_per_s": {"median": 812.04}}}},
                       "faster_rcnn": {"error": "timed out after 150 s"}},
    }  # fmt: skip
    text = format_markdown(report)
    assert "# GPU check: NVIDIA H200" in text and "torch 2.11.0" in text and "2026-12-01" in text
    assert "7 passed, 1 skipped (exit code 0)" in text
    assert "| ssd | bfloat16 | 390 / 400 | 0.25 | 0.1 | 0.02 | yes |" in text
    assert "| yolov3 |" in text and "| NO |" in text
    assert "| rcnn | error: RuntimeError: out of memory |" in text
    assert "| faster_rcnn | 8 | bfloat16 | 2 | detkit/engine/trainer.py:230 x3; detkit/heads/rpn.py:99 x3 |" in text
    assert "train_images_per_s 1.61x" in text and "train_images_per_s 812.0" in text
    assert "**faster_rcnn**: error: timed out after 150 s" in text


def test_a_skipped_part_is_reported_as_skipped():
    text = format_markdown({"syncs": {"skipped": "time budget of 480 s spent (481 s)"}})
    assert "skipped: time budget" in text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_sync_counts_of_one_family_on_cuda():
    from detkit.analysis.device.detector_checks import training_syncs

    result = training_syncs("ssd", torch.device("cuda"), warmup=1, steps=1)
    assert result["supported"] and result["total"] >= 1  # the loss read-back syncs at least once
