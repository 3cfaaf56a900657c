"""Test-time speed of R-CNN against Fast R-CNN on the same images and the same proposals.

    python tools/benchmark_rcnn.py fast=RUN/best.pt rcnn=RUN2/best.pt images=100 output=bench.json
    python tools/benchmark_rcnn.py fast=RUN/best.pt rcnn=RUN2/best.pt images=64 batch_size=8
    python tools/benchmark_rcnn.py fast=fast_rcnn_resnet18_shapes rcnn=rcnn_resnet18_shapes   # untrained

`fast` / `rcnn`: a detkit checkpoint (its stored config builds the model) or an experiment name
(random weights). The validation images of the Fast R-CNN experiment, with its cached proposals,
go through both models in turns, `batch_size` at a time (default 1, as the papers timed); the
first `warmup` batches are not timed. Prints seconds per image, the ratio and the machine; `output=` writes JSON.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from detkit.data.collate import collate_detection  # noqa: E402
from detkit.engine.build import ConfigError, build_dataset, build_model, config_from_yaml, load_config  # noqa: E402
from detkit.engine.checkpoint import load_model_weights, read_checkpoint  # noqa: E402
from detkit.engine.config import split_arguments  # noqa: E402

OWN_KEYS = ("fast", "rcnn", "images", "batch_size", "warmup", "device", "output")


def load(spec: str, num_classes: int | None = None):
    """(model, config) from a checkpoint path or an experiment name."""
    if spec.endswith(".pt") or Path(spec).is_file():
        state = read_checkpoint(spec)
        cfg = config_from_yaml(state["config_yaml"])
        model = build_model(cfg, num_classes=len(state["class_names"]))
        report = load_model_weights(state, model)
        if report["missing"] or report["mismatched"]:
            # Timing a partly initialised model would time the wrong postprocessing load.
            missing = (report["missing"] + report["mismatched"])[:4]
            raise ValueError(f"{spec} does not fit the model its config builds (older code?): {missing}")
        return model, cfg
    cfg = load_config([f"config={spec}"])
    return build_model(cfg, num_classes=num_classes or 1), cfg


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    name = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor(),
    )
    busy = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{busy}"


@torch.no_grad()
def seconds_per_image(
    models: list, samples, device: torch.device, warmup: int, batch_size: int = 1
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
        images = images.to(device)
        targets = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]
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


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv) or not argv:
        print(__doc__)
        return 0
    args, unknown = split_arguments(argv, OWN_KEYS)
    if unknown or "fast" not in args or "rcnn" not in args:
        print(
            f"error: need fast=… and rcnn=…; unknown arguments {unknown}; keys: {', '.join(OWN_KEYS)}",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.get("device", "cuda" if torch.cuda.is_available() else "cpu"))
    warmup, count = int(args.get("warmup", 3)), int(args.get("images", 50))
    batch_size = int(args.get("batch_size", 1))
    try:
        fast, fast_cfg = load(args["fast"])
        dataset = build_dataset(fast_cfg, "val")
        rcnn, _ = load(args["rcnn"], num_classes=len(dataset.class_names))
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    samples = [dataset[i] for i in range(min(warmup * batch_size + count, len(dataset)))]
    timed = samples[warmup * batch_size :]
    proposals = sum(len(t["proposals"]) for _, t in timed) / max(len(timed), 1)
    (fast_seconds, fast_dets), (rcnn_seconds, rcnn_dets) = seconds_per_image(
        [fast, rcnn], samples, device, warmup, batch_size
    )
    report = {
        "images": len(timed), "batch_size": batch_size, "proposals_per_image": proposals,
        "fast_rcnn_s_per_image": fast_seconds, "rcnn_s_per_image": rcnn_seconds,
        "speedup": rcnn_seconds / fast_seconds, "machine": machine(device), "torch": torch.__version__,
        "fast": args["fast"], "rcnn": args["rcnn"], "detections": {"fast_rcnn": fast_dets, "rcnn": rcnn_dets},
    }  # fmt: skip
    print(
        f"{report['images']} images (batch {batch_size}), {proposals:.0f} proposals each, on {report['machine']}:\n"
        f"  Fast R-CNN {1000 * fast_seconds:.1f} ms/image   R-CNN {1000 * rcnn_seconds:.1f} ms/image   "
        f"Fast R-CNN is {report['speedup']:.1f}x faster"
    )
    if "output" in args:
        Path(args["output"]).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
