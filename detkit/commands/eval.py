"""Evaluate detections: COCO's 12 numbers, VOC07 and VOC12 mAP, per-class AP.

    detkit eval checkpoint=outputs/.../best.pt [output=metrics.json] [report=DIR] [backend=…] [data=voc key=value …]
    detkit eval checkpoint=outputs/.../best.pt backend=openvino precision=int8 [calibration=DIR]
    detkit eval ground_truth=GT.json detections=DT.json [output=metrics.json] [report=DIR] [images=DIR]

With a checkpoint, the config stored in it is used (overrides on top) and the model runs over
the validation split; the checkpoint must match its model exactly. `backend=onnxruntime|openvino|auto`
runs the checkpoint's ONNX export through that runtime in the same loop (docs/EXPORT.md);
`precision=int8` with such a backend runs its INT8 model, calibrated on the first
`calibration_images=` (32) images of the checkpoint's data or of `calibration=DIR`. With a
COCO ground-truth file and a COCO results file (such as `detkit predict ... ground_truth=GT.json`
writes) no model is needed.

Both add the error breakdown (TIDE: the cause of each false positive and missed object, the AP
fixing each cause adds) to the metrics, and write an evaluation report (PR curves, confusion matrix,
per-class table, error breakdown; with a checkpoint also its run's training curves) into
report=DIR, else eval_<checkpoint name>/ beside the checkpoint (the run folder's own report from
training stays as it was), else <output name>_report/ beside output=; without either, or with
report=none, no report. The report shows, for each error cause, the 12 images where it costs most:
always with a checkpoint, and with a results file when images=DIR names the folder that the ground
truth's file names are relative to.
"""

from __future__ import annotations

from detkit.commands import RUNTIME_KEYS, runtime_arguments
from detkit.engine.config import ConfigError, split_arguments

USAGE = (
    "usage: detkit eval checkpoint=PATH [report=DIR] [backend=torch|onnxruntime|openvino|auto] [precision=fp32|int8] "
    "[calibration=DIR] [calibration_images=32] [key=value ...] | "
    "ground_truth=GT.json detections=DT.json [output=M.json] [report=DIR] [images=DIR]"
)


def run(argv: list[str]) -> int:
    from detkit.reporting import default_report_dir, evaluate_with_report, format_metrics_table, save_metrics

    keys = ("checkpoint", "ground_truth", "detections", "output", "report", "images") + RUNTIME_KEYS
    args, rest = split_arguments(argv, keys)
    report_dir = default_report_dir(
        report=args.get("report"), checkpoint=args.get("checkpoint"), output=args.get("output")
    )
    if "checkpoint" in args:
        if "images" in args:
            raise ConfigError("images= is for a results file; with a checkpoint the validation images are known")
        from detkit.jobs.train_and_evaluate import evaluate_checkpoint

        metrics = evaluate_checkpoint(args["checkpoint"], rest, report_dir=report_dir, **runtime_arguments(args))
    elif set(RUNTIME_KEYS) & set(args):
        given = ", ".join(f"{key}=" for key in RUNTIME_KEYS if key in args)
        raise ConfigError(f"{given} run a checkpoint's model; a results file needs no model")
    elif "ground_truth" in args and "detections" in args:
        if rest:
            raise ConfigError(f"unexpected arguments {rest}; {USAGE}")
        metrics = evaluate_with_report(
            args["ground_truth"], args["detections"], report_dir, image_dir=args.get("images")
        )
    else:
        raise ConfigError(USAGE)
    print(format_metrics_table(metrics))
    if metrics.get("report_dir"):
        report = metrics["report_dir"]
        print(f"Report (pictures, per-class table, error breakdown) written to {report}; open {report}/report.html")
    if "output" in args:
        print(f"Metrics written to {save_metrics(metrics, args['output'])}")
    return 0
