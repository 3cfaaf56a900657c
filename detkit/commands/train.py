"""Train a detector, then evaluate it on the validation split.

    detkit train                                    # the default experiment (built-in data)
    detkit train config=ssd_vgg16_shapes engine.epochs=4
    detkit train model/backbone=mobilenet_v1 data.batch_size=4 output_dir=runs/mine
    torchrun --nproc_per_node=4 tools/train.py config=...   # distributed (DDP)

(`python tools/train.py ...` is the same command.) Any config key can be overridden with
key=value; `--help` lists the experiments and groups.
"""

from __future__ import annotations

from detkit.engine.config import load_config


def run(argv: list[str]) -> int:
    from detkit.jobs.train_and_evaluate import train  # after the config is known good: a typo answers fast

    train(load_config(argv))
    return 0
