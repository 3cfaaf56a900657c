"""The command-line tools as importable modules: ``run(argv) -> int``, usage in the docstring.

``detkit COMMAND ...`` (:mod:`detkit.cli`) and ``python tools/COMMAND.py ...`` both run them.
"""

from __future__ import annotations

from typing import NamedTuple

#: The ``key=value`` arguments of the commands that run a checkpoint (eval, predict) choosing what
#: runs it: ``detkit.load``'s ``backend``, ``precision``, ``calibration``, ``calibration_images``.
RUNTIME_KEYS = ("backend", "precision", "calibration", "calibration_images")


class Command(NamedTuple):
    module: str
    summary: str
    lists_configs: bool = False  # whether --help also lists the experiments and config groups


COMMANDS: dict[str, Command] = {
    "train": Command("train", "train an experiment, then evaluate it on the validation split", True),
    "eval": Command("eval", "evaluate a checkpoint, or a COCO results file against ground truth"),
    "predict": Command("predict", "detect objects in images: pictures, JSON and a COCO results file"),
    "check": Command("check_dataset", "validate a dataset and summarise it (every problem, by file)", True),
    "export": Command("export", "export to ONNX / TorchScript / .pt2 with NMS inside, checked against PyTorch"),
    "proposals": Command("proposals", "precompute proposals (selective search, Edge Boxes; cached) and report recall"),
    "make-dataset": Command("make_dataset", "generate the synthetic 'scenes' dataset in COCO / VOC / YOLO layouts"),
    "fit-anchors": Command("fit_anchors", "fit anchors / default-box ratios to a dataset's boxes"),
    "fit-svms": Command("fit_svms", "fit R-CNN's per-class linear SVMs on a trained R-CNN"),
    "benchmark": Command("benchmark", "training and inference throughput beside the torchvision peer"),
    "gpu-check": Command("gpu_check", "on a GPU: gpu tests, AMP box parity, syncs per step, benchmarks"),
    "benchmark-rcnn": Command("benchmark_rcnn", "R-CNN vs Fast R-CNN test-time speed on the same proposals"),
    "compare-runs": Command(
        "compare_runs", "validation curves of training runs on one picture, iterations to a threshold"
    ),
    "compare-windows": Command(
        "compare_windows", "sliding windows vs selective search and Edge Boxes + R-CNN: boxes, recall, speed"
    ),
    "report": Command("report", "a run's offline HTML report (run=DIR), or two runs compared (run=A,B)"),
    "lineage": Command(
        "lineage", "every trained detector side by side: accuracy, training time, images/s; table and picture"
    ),
}


def runtime_arguments(args: dict[str, str]) -> dict:
    """The ``RUNTIME_KEYS`` among a command's arguments as ``detkit.load``'s keywords (defaults
    where absent). ``calibration=`` without ``precision=int8`` is refused: it would be ignored."""
    from detkit.engine.config import ConfigError

    precision = args.get("precision", "fp32")
    if precision != "int8" and ({"calibration", "calibration_images"} & set(args)):
        raise ConfigError("calibration= and calibration_images= are for precision=int8 (its calibration images)")
    count = args.get("calibration_images", "32")
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"calibration_images must be a positive number of images, got {count!r}")
    return {"backend": args.get("backend", "torch"), "precision": precision,
            "calibration": args.get("calibration"), "calibration_images": int(count)}  # fmt: skip
