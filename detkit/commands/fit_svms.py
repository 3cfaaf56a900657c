"""Fit the paper's per-class linear SVMs on a trained R-CNN (or SPP-net) and compare them with its softmax.

    detkit fit-svms checkpoint=outputs/.../best.pt [output=svm.pt] [images=N]
        [cost=0.001] [positive_weight=2] [negative_iou=0.3] [compare=true] [metrics=M.json] [key=value ...]

R-CNN's second training stage (Girshick et al., 2014): the network is frozen, every training
image's proposals and ground-truth boxes go through it once, and one linear SVM per class is
fitted with hard-negative mining (positives: ground-truth boxes; negatives: proposals under
`negative_iou` with every box of the class). The SVMs are stored in a new checkpoint (default:
`svm.pt` beside the input) whose config scores classes with them (`model.head.classifier=svm`);
`detkit eval` and `detkit predict` use it like any other. With `compare=true` the validation split
is evaluated with both classifiers. `images=N` fits on the first N training images only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from detkit.engine.config import ConfigError, split_arguments

OWN_KEYS = ("checkpoint", "output", "images", "cost", "positive_weight", "negative_iou", "compare", "metrics")


def run(argv: list[str]) -> int:
    from detkit.jobs.fit_svms import fit_svms_for_checkpoint
    from detkit.reporting import format_metrics_table

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    own, rest = split_arguments(argv, OWN_KEYS)
    if "checkpoint" not in own:
        raise ConfigError(
            "usage: detkit fit-svms checkpoint=PATH [output=svm.pt] [images=N] [cost=0.001] [key=value ...]"
        )
    results = fit_svms_for_checkpoint(
        own["checkpoint"],
        rest,
        output=own.get("output"),
        cost=float(own.get("cost", 1e-3)),
        positive_weight=float(own.get("positive_weight", 2.0)),
        negative_iou=float(own.get("negative_iou", 0.3)),
        max_images=int(own["images"]) if "images" in own else None,
        compare=own.get("compare", "true").lower() in ("1", "true", "yes"),
    )
    fit = results["svm_fit"]
    print(
        f"Fitted {len(fit['positives'])} SVMs on {fit['images']} images in {fit['total_seconds']:.0f} s "
        f"({fit['fits']} fits; "
        f"positives {fit['positives']}, hard negatives kept {fit['cached_negatives']})\n"
        f"Checkpoint with SVMs written to {results['output']}"
    )
    if "svm" in results:
        print(format_metrics_table(results["svm"]))
        for classifier in ("softmax", "svm"):
            metrics = results[classifier]
            print(
                f"validation, {classifier:>7} classifier: mAP50 VOC12 {metrics['voc12']['mAP']:.3f}, "
                f"VOC07 {metrics['voc07']['mAP']:.3f}, COCO AP {metrics['coco']['AP']:.3f}"
            )
    if "metrics" in own:
        Path(own["metrics"]).write_text(json.dumps(results, indent=2, default=float))
        print(f"Report written to {own['metrics']}")
    return 0
