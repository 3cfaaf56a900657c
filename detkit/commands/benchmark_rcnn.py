"""Test-time speed of R-CNN against Fast R-CNN (or SPP-net) on the same images and the same proposals.

    detkit benchmark-rcnn fast=RUN/best.pt rcnn=RUN2/best.pt images=100 output=bench.json
    detkit benchmark-rcnn fast=RUN/best.pt rcnn=RUN2/best.pt images=64 batch_size=8
    detkit benchmark-rcnn fast=fast_rcnn_resnet18_shapes rcnn=rcnn_resnet18_shapes   # untrained
    detkit benchmark-rcnn fast=SPP_RUN/best.pt rcnn=RUN2/best.pt   # SPP-net against R-CNN

`fast` (Fast R-CNN or SPP-net: one backbone pass per image) / `rcnn`: a detkit checkpoint (loaded
strictly; its stored config builds the model) or an experiment name (random weights). The validation
images of the `fast` experiment, with its cached proposals, go through both models in turns,
`batch_size` at a time (default 1, as the papers timed); the first `warmup` batches are not timed.
Prints seconds per image, the ratio and the machine; `output=` writes JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from detkit.engine.config import ConfigError, split_arguments

OWN_KEYS = ("fast", "rcnn", "images", "batch_size", "warmup", "device", "output")


def run(argv: list[str]) -> int:
    import torch

    from detkit.analysis.speed.rcnn import compare_rcnn_speed

    args, unknown = split_arguments(argv, OWN_KEYS)
    if unknown or "fast" not in args or "rcnn" not in args:
        raise ConfigError(f"need fast=… and rcnn=…; unknown arguments {unknown}; keys: {', '.join(OWN_KEYS)}")
    report = compare_rcnn_speed(
        args["fast"],
        args["rcnn"],
        images=int(args.get("images", 50)),
        batch_size=int(args.get("batch_size", 1)),
        warmup=int(args.get("warmup", 3)),
        device=args.get("device", "cuda" if torch.cuda.is_available() else "cpu"),
    )
    name = {"TwoStageDetector": "Fast R-CNN", "SPPNet": "SPP-net"}.get(report["fast_detector"], report["fast_detector"])
    print(
        f"{report['images']} images (batch {report['batch_size']}), {report['proposals_per_image']:.0f} proposals "
        f"each, on {report['machine']}:\n  {name} {1000 * report['fast_rcnn_s_per_image']:.1f} ms/image   "
        f"R-CNN {1000 * report['rcnn_s_per_image']:.1f} ms/image   {name} is {report['speedup']:.1f}x faster"
    )
    if "output" in args:
        Path(args["output"]).write_text(json.dumps(report, indent=2))
    return 0
