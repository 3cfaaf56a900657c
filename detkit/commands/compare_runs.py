"""Validation curves of several training runs on one picture, and when each reached a threshold.

    detkit compare-runs runs=RUN_A,RUN_B labels=fine-tuned,scratch output=compare.png
    detkit compare-runs runs=RUN_A,RUN_B threshold=0.7 metric="VOC12 mAP" json=compare.json

`runs`: run folders (each with its log.jsonl), comma-separated; `labels`: one name per run
(default: the folder names); `metric`: VOC12 mAP (default), VOC07 mAP, COCO AP50 or COCO AP;
`threshold` (default 0.7). Prints one row per run: evaluations, best, final, and the first
iteration whose evaluation reached the threshold.
"""

from __future__ import annotations

import json
from pathlib import Path

from detkit.engine.config import ConfigError, split_arguments

OWN_KEYS = ("runs", "labels", "metric", "threshold", "output", "json")


def run(argv: list[str]) -> int:
    from detkit.reporting.run_comparison import compare_runs

    args, unknown = split_arguments(argv, OWN_KEYS)
    if unknown or "runs" not in args:
        raise ConfigError(f"need runs=DIR,DIR…; unknown arguments {unknown}; keys: {', '.join(OWN_KEYS)}")
    runs = [part for part in args["runs"].split(",") if part]
    labels = args["labels"].split(",") if "labels" in args else [Path(run).name for run in runs]
    threshold = float(args.get("threshold", 0.7))
    rows = compare_runs(runs, labels, metric=args.get("metric", "VOC12 mAP"), threshold=threshold,
                        plot_path=args.get("output"))
    width = max(len(row["label"]) for row in rows)
    print(f"{'run':<{width}}  evals   best  final  iterations to {threshold}")
    for row in rows:
        reached = row["iters_to_threshold"]
        print(f"{row['label']:<{width}}  {row['evaluations']:>5}  {row['best']:.3f}  {row['final']:.3f}  "
              f"{reached if reached is not None else 'not reached'}")
    if "json" in args:
        Path(args["json"]).write_text(json.dumps(rows, indent=2) + "\n")
    return 0
