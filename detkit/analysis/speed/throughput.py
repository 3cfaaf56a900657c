"""Throughput measurement for detectors, detkit's and torchvision's alike, on random data.

Both kinds follow the same calling convention (``model(images, targets)`` → loss dict in train
mode, list of detections in eval mode), so one timing loop serves both.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from detkit.engine.hooks.base import HookBase
from detkit.engine.hooks.ema import ModelEMA
from detkit.engine.hooks.profile import StepProfileHook
from detkit.engine.runtime import cpu_has_native_bf16
from detkit.engine.trainer import Trainer


def random_batch(
    batch_size: int, size: int, num_classes: int, *, boxes_per_image: int = 4, device="cpu", seed: int = 0
):
    """``Tensor[B, 3, size, size]`` in [0, 1] and targets with ``boxes_per_image`` random valid boxes."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch_size, 3, size, size, generator=g)
    targets = []
    for i in range(batch_size):
        xy = torch.rand(boxes_per_image, 2, generator=g) * size * 0.7
        wh = torch.rand(boxes_per_image, 2, generator=g) * size * 0.3 + 8
        boxes = torch.cat((xy, (xy + wh).clamp(max=size)), 1)
        labels = torch.randint(1, num_classes + 1, (boxes_per_image,), generator=g)
        targets.append({"boxes": boxes.to(device), "labels": labels.to(device), "image_id": i})
    return images.to(device), targets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_repeats(
    step: Callable[[], object], *, device: torch.device, warmup: int, iters: int, repeats: int
) -> list[float]:
    """Seconds per call of ``step``, once per repeat (``iters`` calls each), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        _sync(device)
        seconds.append((time.perf_counter() - start) / iters)
    return seconds


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """What ``amp=true`` runs under: bfloat16 on CUDA and on CPUs with bf16 instructions (the
    engine's ``engine.amp=true``), float32 (None) elsewhere or without ``amp``."""
    if not amp:
        return None
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def rate_summary(images: int, seconds: list[float]) -> dict[str, float]:
    """Images/s over repeats: the median and the spread (lowest and highest repeat)."""
    rates = sorted(images / s for s in seconds)
    return {"median": statistics.median(rates), "min": rates[0], "max": rates[-1]}


def measure(
    model: nn.Module,
    *,
    size: int,
    num_classes: int,
    train_batch: int,
    infer_batch: int,
    device: torch.device,
    amp: bool,
    channels_last: bool,
    warmup: int = 3,
    iters: int = 10,
    repeats: int = 3,
) -> dict:
    """Train and inference images/s of ``model`` on random data (median and spread over
    ``repeats``), the detections it returns per image (how much work its postprocessing had: with
    random weights that depends on the initialisation, so report it beside the speed), and the
    peak GPU memory."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, amp)
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)  # noqa: E731
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    images, targets = random_batch(train_batch, size, num_classes, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    def train_step() -> None:
        with autocast():
            losses = model(images, targets)
        # detkit's keys start with loss_; torchvision's SSD names its two "classification" and "bbox_regression".
        sum(losses.values()).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timing = dict(device=device, warmup=warmup, iters=iters, repeats=repeats)
    model.train()
    result: dict = {"train_images_per_s": rate_summary(train_batch, time_repeats(train_step, **timing))}
    result.update(measure_inference(model, size=size, num_classes=num_classes, batches=(1, infer_batch), device=device,
                                    autocast=autocast, warmup=warmup, iters=iters, repeats=repeats))  # fmt: skip
    if device.type == "cuda":
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return result


def measure_inference(
    model: Callable,
    *,
    size: int,
    num_classes: int,
    batches: Sequence[int],
    device: torch.device,
    autocast: Callable | None = None,
    warmup: int = 3,
    iters: int = 10,
    repeats: int = 3,
) -> dict:
    """Inference images/s of ``model`` (eval mode; a detkit or torchvision detector, or a
    ``detkit.export.runtimes.RuntimeDetector``) on the same random images for each batch size:
    ``infer_images_per_s_bs{B}`` and ``detections_per_image_bs{B}``."""
    if isinstance(model, nn.Module):
        model.eval()
    timing = dict(device=device, warmup=warmup, iters=iters, repeats=repeats)
    result: dict = {}
    for batch in sorted(set(batches)):
        infer_images, _ = random_batch(batch, size, num_classes, device=device, seed=1)

        @torch.no_grad()
        def infer_step(x=infer_images) -> list:
            if autocast is None:
                return model(x)
            with autocast():
                return model(x)

        result[f"infer_images_per_s_bs{batch}"] = rate_summary(batch, time_repeats(infer_step, **timing))
        result[f"detections_per_image_bs{batch}"] = sum(len(d["boxes"]) for d in infer_step()) / batch
    return result


def measure_backbone_floor(
    backbone: nn.Module, *, size: int, batch: int, device: torch.device, amp: bool, channels_last: bool,
    warmup: int = 3, iters: int = 10, repeats: int = 3,
) -> dict[str, float]:
    """Forward+backward images/s of a detector's backbone alone: the floor under a training step
    (no neck, head, target assignment or loss can make a step faster than this)."""
    backbone = backbone.to(device).train()
    if channels_last:
        backbone = backbone.to(memory_format=torch.channels_last)
    images = torch.rand(batch, 3, size, size, device=device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, amp)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = backbone(images)
        sum(o.float().mean() for o in outputs.values()).backward()
        backbone.zero_grad(set_to_none=True)

    seconds = time_repeats(step, device=device, warmup=warmup, iters=iters, repeats=repeats)
    return rate_summary(batch, seconds)


class _StepClock(HookBase):
    """Reads the clock after the last hook of every ``iters``-th step past the warmup."""

    priority = 1000  # after every other hook: their work is part of a step

    def __init__(self, *, device: torch.device, warmup: int, iters: int) -> None:
        self.device, self.warmup, self.iters = device, warmup, iters
        self.marks: list[float] = []

    def before_train(self) -> None:
        if self.warmup == 0:
            _sync(self.device)
            self.marks.append(time.perf_counter())

    def after_step(self) -> None:
        done = self.trainer.iters_done
        if done >= self.warmup and (done - self.warmup) % self.iters == 0:
            _sync(self.device)
            self.marks.append(time.perf_counter())


def measure_trainer(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Sequence[tuple],
    *,
    device: torch.device,
    amp: bool,
    warmup: int = 3,
    iters: int = 10,
    repeats: int = 3,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    ema: ModelEMA | None = None,
    hooks: Sequence[HookBase] = (),
    profile: bool = False,
) -> dict:
    """Images/s of full training steps of the real :class:`~detkit.engine.trainer.Trainer`
    (forward, loss, backward, optimizer step and ``hooks``) fed from memory: ``batches``, a
    list of collated ``(images, targets)`` cycled in order, so no decoding or augmentation is
    timed (the copy to the device is, as in training). Median and spread over ``repeats`` runs
    of ``iters`` steps after ``warmup`` steps, and the number of steps the trainer ran. ``profile``:
    also where the timed steps' time went, stage by stage (``step_profile``; on a GPU the stage
    timer synchronises at every stage, which slows the steps it times)."""
    clock = _StepClock(device=device, warmup=warmup, iters=iters)
    profiler = StepProfileHook(None, start=warmup, steps=iters * repeats) if profile else None
    dtype = autocast_dtype(device, amp)
    trainer = Trainer(
        model.to(device), optimizer, list(batches), scheduler=scheduler, ema=ema,
        hooks=[*hooks, clock, *([profiler] if profiler else [])],
        max_iters=warmup + iters * repeats, device=device, amp=dtype is not None, amp_dtype=dtype or torch.bfloat16,
    )  # fmt: skip
    trainer.train()
    seconds = [(end - start) / iters for start, end in itertools.pairwise(clock.marks)]
    images_per_step = len(batches[0][0])
    result = {
        "trainer_train_images_per_s": rate_summary(images_per_step, seconds),
        "trainer_iterations": trainer.iters_done,
    }
    if profiler is not None:
        result["step_profile"] = profiler.report
    return result


def torchvision_peer(name: str, num_classes: int, size: int) -> nn.Module:
    """The torchvision detectors REFERENCES.md measures detkit against, random init."""
    import torchvision
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    if name == "fasterrcnn_resnet18_c4":
        trunk = torchvision.models.resnet18()
        backbone = nn.Sequential(
            trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1, trunk.layer2, trunk.layer3
        )
        backbone.out_channels = 256
        anchors = AnchorGenerator(sizes=((128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),))
        pooler = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
        # min_size = max_size = the input size: torchvision's transform then leaves images as they are.
        return FasterRCNN(backbone, num_classes=num_classes + 1, rpn_anchor_generator=anchors, box_roi_pool=pooler,
                          box_batch_size_per_image=128, min_size=size, max_size=size)
    if name == "ssd300_vgg16":
        if size != 300:
            raise ValueError("torchvision's ssd300_vgg16 works at 300 px only; benchmark SSD with size=300")
        return torchvision.models.detection.ssd300_vgg16(
            weights=None, weights_backbone=None, num_classes=num_classes + 1
        )
    raise ValueError(f"unknown torchvision peer {name!r}; use fasterrcnn_resnet18_c4 or ssd300_vgg16")


def format_rows(rows: dict[str, dict]) -> str:
    """One line per model: each rate as median [min–max] images/s, then the other numbers."""
    lines = []
    for label, row in rows.items():
        parts = []
        for key, value in row.items():
            if key == "step_profile":
                continue  # a table of its own
            if isinstance(value, dict):
                parts.append(f"{key} {value['median']:.2f} [{value['min']:.2f}-{value['max']:.2f}]")
            else:
                parts.append(f"{key} {value:.2f}")
        lines.append(f"{label}: " + ", ".join(parts))
    return "\n".join(lines)
