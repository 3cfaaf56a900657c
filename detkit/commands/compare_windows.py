"""Sliding windows vs selective search + R-CNN: boxes scored per image, their recall, and speed.

    detkit compare-windows windows=RUN/best.pt rcnn=RUN2/best.pt images=50 output=compare.json
    detkit compare-windows windows=sliding_window_lenet_shapes rcnn=rcnn_resnet18_shapes   # untrained

`windows` / `rcnn`: a detkit checkpoint or an experiment name (random weights). The R-CNN
experiment's validation images, with its cached selective-search proposals, go through both
models in turns, one at a time; the first `warmup` are not timed. Prints windows and proposals per
image, their recall at IoU 0.5 and 0.7, and seconds per image; `output=` writes JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from detkit.engine.config import ConfigError, split_arguments

OWN_KEYS = ("windows", "rcnn", "images", "warmup", "device", "output")


def run(argv: list[str]) -> int:
    import torch

    from detkit.analysis.checks.windows import compare_windows

    args, unknown = split_arguments(argv, OWN_KEYS)
    if unknown or "windows" not in args or "rcnn" not in args:
        raise ConfigError(f"need windows=… and rcnn=…; unknown arguments {unknown}; keys: {', '.join(OWN_KEYS)}")
    report = compare_windows(
        args["windows"],
        args["rcnn"],
        images=int(args.get("images", 20)),
        warmup=int(args.get("warmup", 2)),
        device=args.get("device", "cuda" if torch.cuda.is_available() else "cpu"),
    )
    windows, proposals = report["recall"]["windows"], report["recall"]["selective_search"]
    print(
        f"{report['images']} images on {report['machine']}:\n"
        f"  sliding windows   {report['windows_per_image']:7.0f} per image, recall@0.5 {windows['recall@0.5']:.3f}, "
        f"recall@0.7 {windows['recall@0.7']:.3f}, {1000 * report['sliding_window_s_per_image']:.0f} ms/image\n"
        f"  selective search  {report['proposals_per_image']:7.0f} per image, "
        f"recall@0.5 {proposals['recall@0.5']:.3f}, "
        f"recall@0.7 {proposals['recall@0.7']:.3f}, {1000 * report['rcnn_s_per_image']:.0f} ms/image (R-CNN)\n"
        f"  {report['ratio']:.1f}x more windows than proposals"
    )
    if "output" in args:
        Path(args["output"]).write_text(json.dumps(report, indent=2))
    return 0
