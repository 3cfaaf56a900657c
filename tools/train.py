"""Train a detector, then evaluate it on the validation split.

    python tools/train.py                                  # the default experiment (built-in data)
    python tools/train.py config=ssd_vgg16_shapes engine.epochs=4
    python tools/train.py model/backbone=mobilenet_v1 data.batch_size=4 output_dir=runs/mine
    torchrun --nproc_per_node=4 tools/train.py config=...  # distributed (DDP)

Any config key can be overridden with key=value; `--help` lists the experiments and groups.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from detkit.engine.build import ConfigError, load_config  # noqa: E402
from detkit.engine.cli import print_help  # noqa: E402
from detkit.engine.launch import train  # noqa: E402


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print_help()
        return 0
    try:
        cfg = load_config(argv)
        train(cfg)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
