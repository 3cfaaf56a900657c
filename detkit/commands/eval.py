"""Evaluate detections: COCO's 12 numbers, VOC07 and VOC12 mAP, per-class AP.

    detkit eval checkpoint=outputs/.../best.pt [output=metrics.json] [data=voc data.root=... key=value ...]
    detkit eval ground_truth=GT.json detections=DT.json [output=metrics.json]

With a checkpoint, the config stored in it is used (overrides on top) and the model runs over
the validation split; the checkpoint must match its model exactly. With a COCO ground-truth file
and a COCO results file (such as `detkit predict ... ground_truth=GT.json` writes) no model is needed.
"""

from __future__ import annotations

from detkit.engine.config import ConfigError, split_arguments

USAGE = "usage: detkit eval checkpoint=PATH [key=value ...] | ground_truth=GT.json detections=DT.json [output=M.json]"


def run(argv: list[str]) -> int:
    from detkit.evaluation import evaluate, format_metrics_table, save_metrics

    args, rest = split_arguments(argv, ("checkpoint", "ground_truth", "detections", "output"))
    if "checkpoint" in args:
        from detkit.engine.launch import evaluate_checkpoint

        metrics = evaluate_checkpoint(args["checkpoint"], rest)
    elif "ground_truth" in args and "detections" in args:
        if rest:
            raise ConfigError(f"unexpected arguments {rest}; {USAGE}")
        metrics = evaluate(args["ground_truth"], args["detections"])
    else:
        raise ConfigError(USAGE)
    print(format_metrics_table(metrics))
    if "output" in args:
        print(f"Metrics written to {save_metrics(metrics, args['output'])}")
    return 0
