"""A trained checkpoint's inference speed through each backend (``detkit.load(..., backend=)``'s) on
its own validation images: ``detkit benchmark mode=backends checkpoint=PATH``.

The backends take turns: every round times each of them once per batch size, so that a load that
comes and goes on a shared machine falls on all of them alike (timing one backend after another
would hand the quiet minutes to one of them). Each rate is the model alone (letterboxed images
in, detections out), as the evaluation's images/s.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from detkit.analysis.speed.throughput import rate_summary


@torch.no_grad()
def checkpoint_backend_timings(
    checkpoint: str,
    backends: Sequence[str],
    *,
    batches: Sequence[int] = (1, 8),
    images: int = 16,
    rounds: int = 5,
    precisions: Sequence[str] = ("fp32",),
) -> dict:
    """``{"results": {"detkit <experiment> (<backend>)": {"infer_images_per_s_bs{B}": median/min/max,
    "detections_per_image_bs{B}": ...}}, "images": n, "experiment": ...}`` for ``backends`` (torch
    and the runtimes), each on the first ``images`` validation images of the checkpoint's data.
    The runtimes run at each of ``precisions``: ``(<backend>)`` for ``fp32``, ``(<backend>, int8)``
    for the INT8 model (calibrated as ``detkit.load`` calibrates it)."""
    from detkit.engine.build import build_dataset
    from detkit.engine.inference import move_targets
    from detkit.engine.loading import load_detector
    from detkit.export.backend import run_with_backend

    predictors = {}
    for name in backends:
        for precision in ("fp32",) if name == "torch" else precisions:
            label = name if precision == "fp32" else f"{name}, {precision}"
            predictors[label] = run_with_backend(load_detector(checkpoint, device="cpu"), name, precision=precision)
    first = next(iter(predictors.values()))
    dataset = build_dataset(first.cfg, "val")
    count = min(images, len(dataset))
    if count < 1:
        raise ValueError(f"{checkpoint}: its validation split has no images to time")
    samples = [dataset[index] for index in range(count)]
    pixels = torch.stack([image for image, _ in samples])
    # The detectors that score proposals take them from the targets, as in evaluation.
    targets = move_targets([target for _, target in samples], torch.device("cpu"))
    experiment = first.cfg.get("experiment", "model")
    seconds: dict[tuple[str, int], list[float]] = {(name, batch): [] for name in predictors for batch in batches}
    detections: dict[tuple[str, int], int] = {}

    def run(name: str, batch: int) -> int:
        found = 0
        for start in range(0, count, batch):
            found += sum(len(d["scores"]) for d in predictors[name].model(pixels[start : start + batch],
                                                                         targets[start : start + batch]))  # fmt: skip
        return found

    for name in predictors:  # warm-up: first calls allocate, compile kernels, fill caches
        for batch in batches:
            detections[(name, batch)] = run(name, batch)
    for _ in range(rounds):
        for batch in batches:
            for name in predictors:
                start = time.perf_counter()
                run(name, batch)
                seconds[(name, batch)].append(time.perf_counter() - start)
    results: dict[str, dict] = {}
    for (name, batch), times in seconds.items():
        row = results.setdefault(f"detkit {experiment} ({name})", {})
        row[f"infer_images_per_s_bs{batch}"] = rate_summary(count, times)
        row[f"detections_per_image_bs{batch}"] = detections[(name, batch)] / count
    return {"experiment": experiment, "images": count, "rounds": rounds, "results": results}
