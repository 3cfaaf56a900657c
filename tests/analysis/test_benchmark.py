"""The throughput helpers: how often a step runs, how rates are summarised, a real (tiny)
measurement of a detkit detector, its backbone floor and its Trainer, and the NMS timings."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from detkit.analysis.speed import throughput
from detkit.analysis.speed.nms import folded_group_nms, nms_timings, random_candidates
from detkit.analysis.speed.throughput import (
    autocast_dtype,
    format_rows,
    measure,
    measure_backbone_floor,
    measure_inference,
    measure_trainer,
    random_batch,
    rate_summary,
    time_repeats,
)
from detkit.commands.benchmark import backend_rows, throughput_report
from detkit.engine.build import build_model
from detkit.engine.config import ConfigError, load_config
from detkit.ops.nms import select_padded

TINY_OVERRIDES = ["config=yolov1_mobilenet_v1_shapes", "model.backbone.width_mult=0.25"]
needs_runtimes = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime", "openvino")),
    reason="needs onnx, onnxruntime and openvino (the export and openvino extras)",
)


def _tiny_detector() -> torch.nn.Module:
    """A YOLOv1 on a quarter-width MobileNet, 3 classes, seeded: the smallest real detkit detector."""
    torch.manual_seed(0)
    return build_model(load_config(TINY_OVERRIDES), num_classes=3)


def test_time_repeats_runs_warmup_then_each_repeat() -> None:
    calls = []
    seconds = time_repeats(lambda: calls.append(1), device=torch.device("cpu"), warmup=2, iters=3, repeats=4)
    assert len(calls) == 2 + 3 * 4 and len(seconds) == 4 and all(s >= 0 for s in seconds)


def test_rate_summary_median_and_spread() -> None:
    # 8 images in 1, 2 and 4 seconds: 8, 4 and 2 images/s.
    assert rate_summary(8, [2.0, 1.0, 4.0]) == {"median": 4.0, "min": 2.0, "max": 8.0}


def test_measure_a_tiny_detector() -> None:
    model = _tiny_detector()
    common = dict(size=64, device=torch.device("cpu"), amp=False, channels_last=False, warmup=1, iters=1, repeats=2)
    row = measure(model, num_classes=3, train_batch=2, infer_batch=2, **common)
    assert set(row) == {"train_images_per_s", "infer_images_per_s_bs1", "infer_images_per_s_bs2",
                        "detections_per_image_bs1", "detections_per_image_bs2"}  # fmt: skip
    for key in ("train_images_per_s", "infer_images_per_s_bs1", "infer_images_per_s_bs2"):
        assert 0 < row[key]["min"] <= row[key]["median"] <= row[key]["max"]
    floor = measure_backbone_floor(model.backbone, batch=2, **common)
    assert 0 < floor["min"] <= floor["max"]
    assert "train_images_per_s" in format_rows({"tiny": row})


def test_measure_trainer_runs_real_optimizer_steps() -> None:
    model = _tiny_detector()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    steps_seen = []
    optimizer.register_step_post_hook(lambda *_: steps_seen.append(1))
    batches = [random_batch(2, 64, 3, seed=seed) for seed in (0, 1)]
    row = measure_trainer(
        model, optimizer, batches, device=torch.device("cpu"), amp=False, warmup=1, iters=2, repeats=2
    )
    assert row["trainer_iterations"] == 1 + 2 * 2 and len(steps_seen) == 5
    rate = row["trainer_train_images_per_s"]
    assert 0 < rate["min"] <= rate["median"] <= rate["max"]
    changed = [name for name, p in model.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert len(changed) > len(before) // 2  # the optimizer moved the weights
    assert "step_profile" not in row


@pytest.mark.parametrize("native", [True, False])
def test_amp_on_the_cpu_is_bf16_where_the_cpu_has_bf16_instructions(monkeypatch, native) -> None:
    monkeypatch.setattr(throughput, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, True) == (torch.bfloat16 if native else None)
    assert autocast_dtype(cpu, False) is None
    assert autocast_dtype(torch.device("cuda"), True) == torch.bfloat16
    if native:  # the trainer row really trains under bf16 autocast
        model = _tiny_detector()
        dtypes = set()
        model.backbone.register_forward_hook(lambda m, i, out: dtypes.update(v.dtype for v in out.values()))
        batches = [random_batch(2, 64, 3, seed=0)]
        row = measure_trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, device=cpu, amp=True,
                              warmup=1, iters=1, repeats=1)  # fmt: skip
        assert row["trainer_iterations"] == 2 and dtypes == {torch.bfloat16}


def test_measure_trainer_profiles_the_timed_steps_stage_by_stage() -> None:
    model = _tiny_detector()
    batches = [random_batch(2, 64, 3, seed=seed) for seed in (0, 1)]
    row = measure_trainer(model, torch.optim.SGD(model.parameters(), lr=0.01), batches, device=torch.device("cpu"),
                          amp=False, warmup=1, iters=2, repeats=1, profile=True)  # fmt: skip
    profile = row["step_profile"]
    assert profile["steps"] == 2 and profile["first_step"] == 1
    stages = {entry["stage"] for entry in profile["rows"]}
    assert {"forward / backbone", "forward / head", "forward / head / assign", "backward", "optimizer"} <= stages


@pytest.mark.slow  # a full report: model-only rates, the trainer and the backbone floor (~60 s on a busy 2-core box)
def test_throughput_report_puts_the_trainer_beside_the_model_only_rates() -> None:
    own = {"size": "64", "train_batch": "2", "infer_batch": "2", "iters": "1", "warmup": "1", "repeats": "2",
           "device": "cpu", "peer": "none"}  # fmt: skip
    report = throughput_report(own, TINY_OVERRIDES)
    row = report["results"]["detkit yolov1_mobilenet_v1_shapes"]
    assert {"train_images_per_s", "trainer_train_images_per_s", "trainer_iterations"} <= set(row)
    assert row["trainer_iterations"] == 3
    json.dumps(report)  # what output=PATH writes


def test_nms_timings_compare_the_old_and_both_new_ways() -> None:
    results = nms_timings(device=torch.device("cpu"), cases=((3, 60),), num_classes=4, repeats=2)
    case = results["3x60x4"]
    for way in ("folded_group_batched_nms (before)", "per_image", "one_call"):
        assert 0 < case[way]["min_ms"] <= case[way]["median_ms"] <= case[way]["max_ms"]
    assert set(case["speedup_over_before"]) == {"per_image", "one_call"} and case["chosen_for_device"] == "per_image"


def test_folded_group_nms_is_the_old_per_class_selection() -> None:
    boxes, scores, labels = random_candidates(3, 80, 4, seed=2)
    valid = torch.ones_like(scores, dtype=torch.bool)
    old = folded_group_nms(boxes, scores, labels, iou_threshold=0.5, max_detections=30)
    new = select_padded(boxes, scores, labels, valid, iou_threshold=0.5, max_detections=30).to_list()
    for o, n in zip(old, new, strict=True):
        assert torch.equal(o["boxes"], n["boxes"]) and torch.equal(o["labels"], n["labels"])


@needs_runtimes
def test_backend_rows_time_the_export_on_each_runtime() -> None:
    model = _tiny_detector().eval()
    settings = {"size": 64, "infer_batch": 2, "warmup": 1, "iters": 1, "repeats": 2}
    rows = backend_rows(model, "detkit tiny", "onnxruntime, openvino", num_classes=3, settings=settings)
    assert set(rows) == {"detkit tiny (onnxruntime)", "detkit tiny (openvino)"}
    cpu = torch.device("cpu")
    own = measure_inference(model, size=64, num_classes=3, batches=(1, 2), device=cpu, warmup=0, iters=1, repeats=1)
    for row in rows.values():
        assert 0 < row["infer_images_per_s_bs2"]["min"] <= row["infer_images_per_s_bs2"]["max"]
        # The same weights on the same random images: the same detections as the torch row.
        assert row["detections_per_image_bs2"] == own["detections_per_image_bs2"] > 0
    assert backend_rows(model, "detkit tiny", "none", num_classes=3, settings=settings) == {}
    with pytest.raises(ConfigError, match="unknown backends \\['tensorrt'\\]"):
        backend_rows(model, "detkit tiny", "tensorrt", num_classes=3, settings=settings)


@needs_runtimes
def test_backend_rows_at_both_precisions() -> None:
    """``precision=fp32,int8``: a float32 and an INT8 row per runtime, and the INT8 rates over the float ones."""
    from detkit.commands.benchmark import int8_ratios, parse_precisions

    model = _tiny_detector().eval()
    settings = {"size": 64, "infer_batch": 2, "warmup": 1, "iters": 1, "repeats": 1}
    precisions = parse_precisions({"precision": "fp32,int8"})
    rows = backend_rows(model, "detkit tiny", "openvino", num_classes=3, settings=settings, precisions=precisions)
    assert set(rows) == {"detkit tiny (openvino)", "detkit tiny (openvino, int8)"}
    ratios = int8_ratios(rows)
    assert set(ratios) == {"openvino"} and ratios["openvino"]["infer_images_per_s_bs1"] > 0
    with pytest.raises(ConfigError, match="unknown precision \\['fp16'\\]"):
        parse_precisions({"precision": "fp32,fp16"})


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("onnx", "onnxruntime")), reason="needs the export extra"
)
def test_checkpoint_through_the_backends_in_turn(tmp_path, monkeypatch) -> None:
    from detkit.commands.benchmark import checkpoint_backends_report
    from tests.export.detectors import save_small_checkpoint

    monkeypatch.setenv("DETKIT_CACHE", str(tmp_path / "cache"))
    checkpoint = tmp_path / "best.pt"
    save_small_checkpoint("yolov1", checkpoint, "data.num_train=2", "data.num_val=3", "data.input_size=96")
    own = {"mode": "backends", "checkpoint": str(checkpoint), "backends": "onnxruntime", "infer_batch": "2",
           "images": "3", "repeats": "2", "precision": "fp32,int8"}  # fmt: skip
    report = checkpoint_backends_report(own, [])
    torch_row = report["results"]["detkit yolov1_mobilenet_v1_shapes (torch, beside onnxruntime)"]
    runtime_row = report["results"]["detkit yolov1_mobilenet_v1_shapes (onnxruntime)"]
    int8_row = report["results"]["detkit yolov1_mobilenet_v1_shapes (onnxruntime, int8)"]
    assert report["images"] == 3 and set(report["ratios_backend_over_torch"]) == {"onnxruntime", "onnxruntime, int8"}
    assert set(report["ratios_int8_over_fp32"]) == {"onnxruntime"} and int8_row["infer_images_per_s_bs2"]["min"] > 0
    for batch in (1, 2):
        rate = runtime_row[f"infer_images_per_s_bs{batch}"]
        assert 0 < rate["min"] <= rate["median"] <= rate["max"]
        # The same model on the same images: the same number of detections.
        assert runtime_row[f"detections_per_image_bs{batch}"] == torch_row[f"detections_per_image_bs{batch}"] > 0
    json.dumps(report)
    with pytest.raises(ConfigError, match="usage: detkit benchmark mode=backends checkpoint=PATH"):
        checkpoint_backends_report({"mode": "backends"}, [])
