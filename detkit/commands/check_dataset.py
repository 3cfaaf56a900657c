"""Validate a dataset and summarise it: images, boxes per class, box sizes, problems by file.

    detkit check data=coco data.train.ann_file=... data.train.img_dir=... output=report.json
    detkit check data=voc data.root=VOCdevkit/VOC2007 split=val

Reads the stored annotations and images as the loader parses them (no transform, and no proposal
search for Fast R-CNN / R-CNN experiments). Exit code 1 when problems were found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# torch-free modules only: the check reads annotations and image files, never tensors.
from detkit.data.checks import check_dataset
from detkit.engine.config import instantiate_dataset, load_config, split_arguments


def run(argv: list[str]) -> int:
    own, rest = split_arguments(argv, ("output", "split"))
    splits = [own["split"]] if "split" in own else ["train", "val"]
    cfg = load_config(rest)
    report = {split: check_dataset(instantiate_dataset(cfg, split)) for split in splits}
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if "output" in own:
        Path(own["output"]).write_text(text)
        print(f"Report written to {own['output']}", file=sys.stderr)
    problems = sum(len(r.get("problems", [])) for r in report.values())
    return 1 if problems else 0
