"""Test-time speed of R-CNN against a single-pass detector (Fast R-CNN or SPP-net) on the same
images and the same proposals: the comparison the Fast R-CNN paper made (and SPP-net's before
it), measured on this machine."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from detkit.data.collate import collate_detection
from detkit.engine.inference import move_targets
from detkit.utils.machine import machine_description


def model_for(spec: str, num_classes: int | None = None) -> tuple[nn.Module, object]:
    """``(model, config)`` of a checkpoint path (loaded strictly through :func:`detkit.engine.loading.load_detector`: a
    partly initialised model would time the wrong postprocessing load) or of an experiment name
    (random weights, ``num_classes`` classes)."""
    from detkit.engine.build import build_model
    from detkit.engine.config import load_config
    from detkit.engine.loading import load_detector

    if spec.endswith(".pt") or Path(spec).is_file():
        predictor = load_detector(spec, device="cpu")
        return predictor.model, predictor.cfg
    cfg = load_config([f"config={spec}"])
    return build_model(cfg, num_classes=num_classes or 1), cfg


@torch.no_grad()
def seconds_per_image(
    models: list[nn.Module], samples: list, device: torch.device, warmup: int, batch_size: int = 1
) -> list[tuple[float, int]]:
    """Per model: mean seconds per image and detections made. The models take turns on each batch,
    so a machine whose load changes during the run slows them alike. The first ``warmup`` batches
    are not timed."""
    elapsed, detections = [0.0] * len(models), [0] * len(models)
    for model in models:
        model.eval().to(device)
    batches = [samples[start : start + batch_size] for start in range(0, len(samples), batch_size)]
    for index, batch in enumerate(batches):
        images, targets = collate_detection(batch)
        images, targets = images.to(device), move_targets(targets, device)
        for slot, model in enumerate(models):
            start = time.perf_counter()
            output = model(images, targets)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if index >= warmup:
                elapsed[slot] += time.perf_counter() - start
                detections[slot] += sum(len(o["boxes"]) for o in output)
    timed = max(sum(len(batch) for batch in batches[warmup:]), 1)
    return [(seconds / timed, count) for seconds, count in zip(elapsed, detections, strict=True)]


def compare_rcnn_speed(fast: str, rcnn: str, *, images: int, batch_size: int, warmup: int, device: str) -> dict:
    """Time ``fast`` (a Fast R-CNN or SPP-net checkpoint or experiment: one backbone pass per
    image) against ``rcnn`` on ``fast``'s validation images and cached proposals; the report that
    ``detkit benchmark-rcnn`` prints (``fast_detector`` names the class timed as ``fast``)."""
    from detkit.engine.build import build_dataset

    target = torch.device(device)
    fast_model, fast_cfg = model_for(fast)
    dataset = build_dataset(fast_cfg, "val")
    rcnn_model, _ = model_for(rcnn, num_classes=len(dataset.class_names))
    samples = [dataset[i] for i in range(min(warmup * batch_size + images, len(dataset)))]
    timed = samples[warmup * batch_size :]
    proposals = sum(len(t["proposals"]) for _, t in timed) / max(len(timed), 1)
    (fast_seconds, fast_dets), (rcnn_seconds, rcnn_dets) = seconds_per_image(
        [fast_model, rcnn_model], samples, target, warmup, batch_size
    )
    return {
        "images": len(timed), "batch_size": batch_size, "proposals_per_image": proposals,
        "fast_rcnn_s_per_image": fast_seconds, "rcnn_s_per_image": rcnn_seconds,
        "speedup": rcnn_seconds / fast_seconds, "machine": machine_description(target), "torch": torch.__version__,
        "fast": fast, "fast_detector": type(fast_model).__name__, "rcnn": rcnn,
        "detections": {"fast_rcnn": fast_dets, "rcnn": rcnn_dets},
    }  # fmt: skip
