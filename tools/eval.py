"""Evaluate detections: COCO's 12 numbers, VOC07 and VOC12 mAP, per-class AP.

    python tools/eval.py checkpoint=outputs/.../best.pt [data=voc data.root=... key=value ...]
    python tools/eval.py ground_truth=GT.json detections=DT.json output=metrics.json

With a checkpoint, the config stored in it is used (overrides on top) and the model runs over
the validation split. With a ground-truth file and a COCO results file no model is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from detkit.engine.build import ConfigError, load_config_with_overrides  # noqa: E402
from detkit.engine.checkpoint import read_checkpoint  # noqa: E402
from detkit.engine.config import split_arguments  # noqa: E402
from detkit.evaluation import evaluate, format_metrics_table, save_metrics  # noqa: E402

USAGE = "usage: tools/eval.py checkpoint=PATH [key=value ...] | ground_truth=GT.json detections=DT.json [output=M.json]"


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    args, rest = split_arguments(argv, ("checkpoint", "ground_truth", "detections", "output"))
    try:
        if "checkpoint" in args:
            from detkit.engine.launch import evaluate_checkpoint

            state = read_checkpoint(args["checkpoint"])
            if not state.get("config_yaml"):
                raise ConfigError(f"{args['checkpoint']} stores no config; it was not written by tools/train.py")
            cfg = load_config_with_overrides(state["config_yaml"], rest)
            metrics = evaluate_checkpoint(cfg, args["checkpoint"])
        elif "ground_truth" in args and "detections" in args:
            if rest:
                raise ConfigError(f"unexpected arguments {rest}; {USAGE}")
            metrics = evaluate(args["ground_truth"], args["detections"])
        else:
            raise ConfigError(USAGE)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_metrics_table(metrics))
    if "output" in args:
        print(f"Metrics written to {save_metrics(metrics, args['output'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
