"""The command-line tools as importable modules: ``run(argv) -> int``, usage in the docstring.

``detkit COMMAND ...`` (:mod:`detkit.cli`) and ``python tools/COMMAND.py ...`` both run them.
"""

from __future__ import annotations

from typing import NamedTuple


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
