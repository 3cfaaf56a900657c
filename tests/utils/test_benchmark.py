"""The throughput helpers: how often a step runs, how rates are summarised, and a real (tiny)
measurement of a detkit detector and its backbone floor."""

from __future__ import annotations

import torch

from detkit.engine.build import build_model
from detkit.engine.config import load_config
from detkit.utils.benchmark import format_rows, measure, measure_backbone_floor, rate_summary, time_repeats


def test_time_repeats_runs_warmup_then_each_repeat() -> None:
    calls = []
    seconds = time_repeats(lambda: calls.append(1), device=torch.device("cpu"), warmup=2, iters=3, repeats=4)
    assert len(calls) == 2 + 3 * 4 and len(seconds) == 4 and all(s >= 0 for s in seconds)


def test_rate_summary_median_and_spread() -> None:
    # 8 images in 1, 2 and 4 seconds: 8, 4 and 2 images/s.
    assert rate_summary(8, [2.0, 1.0, 4.0]) == {"median": 4.0, "min": 2.0, "max": 8.0}


def test_measure_a_tiny_detector() -> None:
    cfg = load_config(["config=yolov1_mobilenet_v1_shapes", "model.backbone.width_mult=0.25"])
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=3)
    common = dict(size=64, device=torch.device("cpu"), amp=False, channels_last=False, warmup=1, iters=1, repeats=2)
    row = measure(model, num_classes=3, train_batch=2, infer_batch=2, **common)
    assert set(row) == {"train_images_per_s", "infer_images_per_s_bs1", "infer_images_per_s_bs2",
                        "detections_per_image_bs1", "detections_per_image_bs2"}  # fmt: skip
    for key in ("train_images_per_s", "infer_images_per_s_bs1", "infer_images_per_s_bs2"):
        assert 0 < row[key]["min"] <= row[key]["median"] <= row[key]["max"]
    floor = measure_backbone_floor(model.backbone, batch=2, **common)
    assert 0 < floor["min"] <= floor["max"]
    assert "train_images_per_s" in format_rows({"tiny": row})
