"""Validate a dataset and summarise it: images, boxes per class, box sizes, problems by file.

    python tools/check_dataset.py data=coco data.train.ann_file=... data.train.img_dir=... output=report.json
    python tools/check_dataset.py data=voc data.root=VOCdevkit/VOC2007 split=val

Reads the stored annotations and images as the loader parses them (no transform, and no proposal
search for Fast R-CNN / R-CNN experiments). Exit code 1 when problems were found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

# torch-free modules only: the check reads annotations and image files, never tensors.
from detkit.data.checks import check_dataset  # noqa: E402
from detkit.engine.config import ConfigError, instantiate_dataset, load_config, split_arguments  # noqa: E402


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    own, rest = split_arguments(argv, ("output", "split"))
    splits = [own["split"]] if "split" in own else ["train", "val"]
    try:
        cfg = load_config(rest)
        report = {split: check_dataset(instantiate_dataset(cfg, split)) for split in splits}
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if "output" in own:
        Path(own["output"]).write_text(text)
        print(f"Report written to {own['output']}", file=sys.stderr)
    problems = sum(len(r.get("problems", [])) for r in report.values())
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
