"""Fit the paper's per-class linear SVMs on a trained R-CNN and compare them with its softmax.

    python tools/fit_rcnn_svms.py checkpoint=outputs/.../best.pt [output=svm.pt] [images=N]
        [cost=0.001] [positive_weight=2] [negative_iou=0.3] [compare=true] [metrics=M.json] [key=value ...]

R-CNN's second training stage (Girshick et al., 2014): the network is frozen, every training
image's proposals and ground-truth boxes go through it once, and one linear SVM per class is
fitted with hard-negative mining (positives: ground-truth boxes; negatives: proposals under
``negative_iou`` with every box of the class). The SVMs are stored in a new checkpoint (default:
``svm.pt`` beside the input) whose config scores classes with them (``model.head.classifier=svm``);
tools/eval.py and tools/predict.py use it like any other. With ``compare=true`` the validation split
is evaluated with both classifiers. ``images=N`` fits on the first N training images only.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from omegaconf import open_dict  # noqa: E402

from detkit.engine.build import (  # noqa: E402
    ConfigError,
    build_dataset,
    build_model,
    config_to_yaml,
    load_config_with_overrides,
)
from detkit.engine.checkpoint import load_model_weights, read_checkpoint, save_checkpoint  # noqa: E402
from detkit.engine.config import split_arguments  # noqa: E402
from detkit.engine.dist import select_device  # noqa: E402
from detkit.engine.inference import evaluate_model  # noqa: E402
from detkit.engine.launch import amp_dtype, set_cpu_threads  # noqa: E402
from detkit.engine.rcnn_svms import fit_rcnn_svms  # noqa: E402
from detkit.evaluation import format_metrics_table  # noqa: E402
from detkit.heads.class_svms import SVMTrainer  # noqa: E402

OWN_KEYS = ("checkpoint", "output", "images", "cost", "positive_weight", "negative_iou", "compare", "metrics")
USAGE = "usage: tools/fit_rcnn_svms.py checkpoint=PATH [output=svm.pt] [images=N] [cost=0.001] [key=value ...]"


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    own, rest = split_arguments(argv, OWN_KEYS)
    try:
        if "checkpoint" not in own:
            raise ConfigError(USAGE)
        source = Path(own["checkpoint"])
        state = read_checkpoint(source)
        cfg = load_config_with_overrides(state.get("config_yaml") or "{}", rest)
        if not str(cfg.get("model", {}).get("_target_", "")).endswith(".RCNN"):
            raise ConfigError(f"{source} is not an R-CNN checkpoint (model {cfg.get('model', {}).get('_target_')})")
        with open_dict(cfg):
            cfg.model.head.classifier = "svm"
        set_cpu_threads(cfg)
        device = select_device(cfg.engine.device)
        names = list(state["class_names"])
        model = build_model(cfg, num_classes=len(names)).to(device)
        report = load_model_weights(state, model, use_ema=state.get("ema") is not None)
        missing = [key for key in report["missing"] if not key.startswith("head.svms.")]
        if missing:
            raise ValueError(f"{source} does not fit this R-CNN: missing {missing[:5]}")
        trainer = SVMTrainer(
            len(names),
            cost=float(own.get("cost", 1e-3)),
            positive_weight=float(own.get("positive_weight", 2.0)),
            negative_iou=float(own.get("negative_iou", 0.3)),
        )
        train_set = build_dataset(cfg, "train", augment=False)
        max_images = int(own["images"]) if "images" in own else None
        batch_size = int(cfg.data.batch_size)
        summary = fit_rcnn_svms(model, train_set, device, trainer, batch_size=batch_size, max_images=max_images)
    except (ConfigError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"Fitted {len(names)} SVMs on {summary['images']} images in {summary['total_seconds']:.0f} s "
        f"({summary['fits']} fits; positives {summary['positives']}, hard negatives kept {summary['cached_negatives']})"
    )
    output = Path(own.get("output", source.with_name("svm.pt")))
    save_checkpoint(
        output,
        model=model,
        iteration=int(state.get("iteration", 0)),
        epoch=int(state.get("epoch", 0)),
        config_yaml=config_to_yaml(cfg),
        class_names=names,
        extra={"svm_fit": summary, "svm_source_checkpoint": str(source)},
    )
    print(f"Checkpoint with SVMs written to {output}")

    results = {"svm_fit": summary}
    if own.get("compare", "true").lower() in ("1", "true", "yes"):
        val_set = build_dataset(cfg, "val")
        dtype = amp_dtype(cfg, device)
        for classifier in ("softmax", "svm"):
            model.head.classifier = classifier
            results[classifier] = evaluate_model(model, val_set, device, batch_size=batch_size, amp_dtype=dtype)
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
