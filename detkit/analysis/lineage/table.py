"""The lineage table's rows: trained detectors side by side in accuracy and in inference speed.

Per run folder written by ``tools/train.py``:

- accuracy and training cost are the numbers of its ``metrics.json`` as training wrote them (VOC12
  mAP50, COCO AP, ``train_seconds``, ``iterations``); nothing is re-evaluated;
- the weights timed are ``last.pt``'s. ``metrics.json`` is the evaluation of the final weights
  (training evaluates after its last iteration, or once more when its last periodic evaluation
  came earlier), and the checkpoint hook writes ``last.pt`` at that same iteration, whereas
  ``best.pt`` is the best *periodic* evaluation, possibly an earlier one. The checkpoint's
  ``iteration`` is checked against ``metrics.json``'s, so a table never pairs numbers with other
  weights. :func:`detkit.load` takes the EMA weights when the run kept an EMA, as its evaluations did;
- speed is images/s of the model's eval-mode forward, postprocessing included, on the first
  ``images`` images of the run's validation split, fed as evaluation feeds them (the dataset's
  letterboxed uint8 batch on the device, targets carrying the precomputed proposals of the
  detectors that read them) and timed as evaluation times them: the model call only, so image
  decoding, letterboxing, the proposal search (cached on disk) and the copy to the device are out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from detkit.analysis.speed.throughput import rate_summary, time_repeats
from detkit.data.collate import collate_detection
from detkit.engine.build import build_dataset
from detkit.engine.checkpoint import read_checkpoint
from detkit.engine.config import ConfigError
from detkit.engine.dist import select_device
from detkit.engine.inference import move_targets
from detkit.engine.loading import load_detector
from detkit.proposals.precomputed import needs_precomputed_proposals
from detkit.utils.machine import cpu_model

TWO_STAGE = "two-stage (region-based)"
ONE_STAGE = "one-stage (grid/dense)"
BASELINE = "baseline"
OTHER = "other"

# Experiments are named <detector>_<backbone>_<data>; the longest matching prefix names the detector.
DETECTORS: dict[str, tuple[str, str]] = {
    "rcnn": ("R-CNN", TWO_STAGE),
    "spp_net": ("SPP-net", TWO_STAGE),
    "fast_rcnn": ("Fast R-CNN", TWO_STAGE),
    "faster_rcnn": ("Faster R-CNN", TWO_STAGE),
    "faster_rcnn_fpn": ("Faster R-CNN + FPN", TWO_STAGE),
    "rfcn": ("R-FCN", TWO_STAGE),
    "ssd": ("SSD", ONE_STAGE),
    "ssd300": ("SSD", ONE_STAGE),
    "retinanet": ("RetinaNet", ONE_STAGE),
    "yolov1": ("YOLOv1", ONE_STAGE),
    "yolov2": ("YOLOv2", ONE_STAGE),
    "yolov3": ("YOLOv3", ONE_STAGE),
    "yolov4": ("YOLOv4", ONE_STAGE),
    "sliding_window": ("sliding windows", BASELINE),
    "localizer": ("single-object localiser", BASELINE),
}


@dataclass(frozen=True)
class TrainedRun:
    """A finished training run: its folder, its ``metrics.json`` and the checkpoint they describe."""

    folder: Path
    metrics: dict
    checkpoint: Path


def read_run(folder: str | os.PathLike) -> TrainedRun:
    """The run in ``folder``, checked: ``metrics.json`` with the numbers the table shows, and a
    ``last.pt`` at the iteration those numbers were measured at; otherwise one error naming the
    folder and what is missing or inconsistent."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder not found: {folder}")
    missing = [name for name in ("metrics.json", "last.pt") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} is not a finished training run: it has no {' and no '.join(missing)} "
            "(tools/train.py writes both when training ends)"
        )
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{folder / 'metrics.json'} is not valid JSON: {error}") from error
    absent = [key for key in ("experiment", "iterations", "train_seconds") if key not in metrics]
    absent += [
        f"{group}.{key}" for group, key in (("voc12", "mAP"), ("coco", "AP")) if key not in metrics.get(group, {})
    ]
    if absent:
        raise ConfigError(f"{folder / 'metrics.json'} lacks {', '.join(absent)}: it was not written by tools/train.py")
    checkpoint = folder / "last.pt"
    iteration = read_checkpoint(checkpoint).get("iteration")
    if iteration != metrics["iterations"]:
        raise ConfigError(
            f"{checkpoint} holds iteration {iteration} but {folder / 'metrics.json'} was measured after "
            f"{metrics['iterations']}: the checkpoint is not the weights those numbers came from"
        )
    return TrainedRun(folder, metrics, checkpoint)


def detector_of(experiment: str, model: nn.Module) -> tuple[str, str]:
    """``(detector, family)`` of an experiment name; a name of no known detector gives the model's
    class name and the family ``other``."""
    prefixes = [prefix for prefix in DETECTORS if experiment == prefix or experiment.startswith(prefix + "_")]
    if not prefixes:
        return type(model).__name__, OTHER
    return DETECTORS[max(prefixes, key=len)]


def backbone_name(model_cfg) -> str:
    """The backbone as a reader knows it: its factory (or torchvision architecture) and width."""
    backbone = model_cfg.get("backbone") or {}
    name = str(backbone.get("arch") or backbone.get("_target_", "?")).rsplit(".", 1)[-1]
    width = backbone.get("width_mult")
    return name if width is None or float(width) == 1.0 else f"{name} ×{float(width):g}"


@torch.no_grad()
def inference_rates(
    model: nn.Module,
    samples: Sequence[tuple],
    *,
    batch_sizes: Sequence[int],
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    repeats: int = 5,
) -> dict[int, dict]:
    """Images/s of ``model`` in eval mode over ``samples`` (dataset items), per batch size: median
    and spread (lowest, highest) of ``repeats`` passes over the samples, after one warm-up batch.
    Only whole batches are timed (a smaller last batch would time another shape); ``images`` in
    each result says how many."""
    model.eval()
    rates: dict[int, dict] = {}
    for batch_size in batch_sizes:
        usable = len(samples) // batch_size * batch_size
        if usable == 0:
            raise ConfigError(
                f"batch size {batch_size} needs at least {batch_size} images; there are {len(samples)} to time"
            )
        batches = []
        for start in range(0, usable, batch_size):
            images, targets = collate_detection(samples[start : start + batch_size])
            batches.append((images.to(device), move_targets(targets, device)))

        def forward(batch: tuple) -> list:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                return model(*batch)

        forward(batches[0])  # the first call allocates buffers (and on a GPU, autotunes): not timed
        seconds = time_repeats(
            lambda batches=batches: [forward(b) for b in batches], device=device, warmup=0, iters=1, repeats=repeats
        )
        rates[batch_size] = {**rate_summary(usable, seconds), "images": usable}
    return rates


def measure_run(run: TrainedRun, *, images: int, batch_sizes: Sequence[int], device: str, repeats: int) -> dict:
    """One row of the table: ``run``'s numbers from ``metrics.json`` and its measured images/s."""
    predictor = load_detector(run.checkpoint, device=device)
    val_set = build_dataset(predictor.cfg, "val")  # with its cached proposals, as evaluation builds it
    samples = [val_set[index] for index in range(min(images, len(val_set)))]
    rates = inference_rates(predictor.model, samples, batch_sizes=batch_sizes, device=predictor.device,
                            amp_dtype=predictor.amp_dtype, repeats=repeats)  # fmt: skip
    metrics = run.metrics
    detector, family = detector_of(str(metrics["experiment"]), predictor.model)
    return {
        "experiment": metrics["experiment"],
        "detector": detector,
        "family": family,
        "backbone": backbone_name(predictor.cfg.model),
        "voc12_mAP": metrics["voc12"]["mAP"],
        "coco_AP": metrics["coco"]["AP"],
        "train_seconds": metrics["train_seconds"],
        "iterations": metrics["iterations"],
        "images_per_s": {str(batch): rate for batch, rate in rates.items()},
        "cached_proposals": needs_precomputed_proposals(predictor.model),
        "input_size": predictor.input_size,
        "run_dir": str(run.folder),
        "checkpoint": str(run.checkpoint),
    }


def lineage(
    run_dirs: Sequence[str | os.PathLike],
    *,
    images: int = 50,
    batch_sizes: Sequence[int] = (1, 8),
    threads: int | None = None,
    device: str = "auto",
    repeats: int = 5,
) -> dict:
    """``{"machine": …, "settings": …, "rows": [one per run, in order]}``. Every folder is checked
    before the first measurement, so a mistyped one fails at once. ``threads``: torch's CPU threads
    for every run alike (``None``: torch's default), restored afterwards; each run's own
    ``engine.num_threads`` is not applied, or runs would be timed with different resources."""
    if images < 1 or repeats < 1 or not batch_sizes or min(batch_sizes) < 1 or (threads is not None and threads < 1):
        raise ConfigError(f"images, batch sizes, threads and repeats must be positive; got {images}, "
                          f"{list(batch_sizes)}, {threads}, {repeats}")
    if images < max(batch_sizes):
        raise ConfigError(f"images={images} is fewer than the largest batch size, {max(batch_sizes)}")
    runs = [read_run(folder) for folder in run_dirs]
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        target = select_device(device)
        # Described before measuring: the load average then is the other jobs', not this one's.
        machine = {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(target) if target.type == "cuda" else None,
            "device": str(target),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        }
        rows = [
            measure_run(run, images=images, batch_sizes=batch_sizes, device=device, repeats=repeats) for run in runs
        ]
    finally:
        torch.set_num_threads(previous_threads)
    settings = {"images": images, "batch_sizes": list(batch_sizes), "repeats": repeats, "warmup_batches": 1}
    return {"machine": machine, "settings": settings, "rows": rows}
