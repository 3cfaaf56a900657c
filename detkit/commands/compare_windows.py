"""Sliding windows vs selective search and Edge Boxes + R-CNN: boxes scored per image, their recall, speed.

    detkit compare-windows windows=RUN/best.pt rcnn=RUN2/best.pt images=50 output=compare.json
    detkit compare-windows windows=sliding_window_lenet_shapes rcnn=rcnn_resnet18_shapes   # untrained

`windows` / `rcnn`: a detkit checkpoint or an experiment name (random weights). The R-CNN
experiment's validation images, with its cached proposals, go through both models in turns, one at
a time; the first `warmup` are not timed. The same images' proposals from every method
(selective search, Edge Boxes: the experiment's settings, each method's defaults where it has
none; searched and cached when missing) are counted, searched once more to time the search
alone, and scored by the R-CNN. Prints windows and proposals per image, their recall at IoU 0.5
and 0.7, and seconds per image; `output=` writes JSON.
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
    windows = report["recall"]["windows"]
    lines = [
        f"{report['images']} images on {report['machine']}:",
        f"  {'sliding windows':18s}{report['windows_per_image']:6.0f} per image, "
        f"recall@0.5 {windows['recall@0.5']:.3f}, "
        f"recall@0.7 {windows['recall@0.7']:.3f}, {1000 * report['sliding_window_s_per_image']:.0f} ms/image",
    ]
    for method, row in report["methods"].items():
        lines.append(
            f"  {method.replace('_', ' '):18s}{row['boxes_per_image']:6.0f} per image, "
            f"recall@0.5 {row['recall@0.5']:.3f}, "
            f"recall@0.7 {row['recall@0.7']:.3f}, search {1000 * row['search_s_per_image']:.0f} ms/image, "
            f"{report['rcnn_detector']} {1000 * row['rcnn_s_per_image']:.0f} ms/image"
        )
    lines.append(f"  {report['ratio']:.1f}x more windows than {report['proposal_method'].replace('_', ' ')} proposals")
    print("\n".join(lines))
    if "output" in args:
        Path(args["output"]).write_text(json.dumps(report, indent=2))
    return 0
