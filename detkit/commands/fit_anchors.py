"""Fit priors to a dataset's boxes (as the model sees them, after the resize) and print them as
config values: YOLOv3/YOLOv4 anchors (k-means with the 1 − IoU distance; one flat group of 5 for
YOLOv2's single grid), RPN anchor sizes and aspect
ratios, SSD default-box aspect ratios (each r adds r and 1/r) and scale range.

    detkit fit-anchors data=shapes k=9 for=yolov3
    detkit fit-anchors data=shapes for=yolov2                   # k=5 unless given
    detkit fit-anchors data=voc data.root=VOCdevkit/VOC2007 for=rpn output=anchors.yaml
    detkit fit-anchors config=yolov3_resnet18_shapes            # every kind, k=9

Own keys: k (clusters for YOLOv3, default 9; YOLOv2 default 5), levels (YOLOv3 levels, 3), for
(yolov2 | yolov3 | rpn | ssd | all), split (train), seed (0), rpn_sizes / rpn_ratios (3 / 3),
ssd_ratios (2), output (a YAML file). Everything else is a config override (data=...,
data.input_size=..., config=...).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from detkit.engine.config import ConfigError, load_config, split_arguments

DEFAULTS = {"k": "9", "levels": "3", "for": "all", "split": "train", "seed": "0", "rpn_sizes": "3",
            "rpn_ratios": "3", "ssd_ratios": "2"}  # fmt: skip
KINDS = ("yolov2", "yolov3", "rpn", "ssd", "all")
YOLOV2_K = 5  # the paper's trade-off between recall and model size


def run(argv: list[str]) -> int:
    given, overrides = split_arguments(argv, (*DEFAULTS, "output"))
    own = {**DEFAULTS, **given}
    if own["for"] == "yolov2" and "k" not in given:
        own["k"] = str(YOLOV2_K)
    result = fit_priors(own, overrides)
    text = yaml.safe_dump(result, sort_keys=False, default_flow_style=None)
    print(text, end="")
    if "output" in given:
        Path(given["output"]).write_text(text)
        print(f"written to {given['output']}", file=sys.stderr)
    return 0


def fit_priors(own: dict, overrides: list[str]) -> dict:
    """The fitted priors of every kind ``own["for"]`` names, as config keys → values."""
    from detkit.engine.build import build_dataset
    from detkit.engine.workers import loader_workers
    from detkit.priors.kmeans import (
        dataset_box_shapes,
        group_by_level,
        kmeans_anchors,
        mean_best_iou,
        rpn_sizes_and_ratios,
        ssd_ratios_and_scales,
    )

    if own["for"] not in KINDS:
        raise ConfigError(f"for={own['for']} is not one of {', '.join(KINDS)}")
    cfg = load_config(overrides)
    wh = dataset_box_shapes(
        build_dataset(cfg, own["split"], augment=False), num_workers=loader_workers(cfg.data.num_workers)
    )
    size = int(cfg.data.input_size)
    result: dict = {"boxes": int(wh.shape[0]), "input_size": size}
    if own["for"] in ("yolov3", "all"):
        anchors = kmeans_anchors(wh, int(own["k"]), seed=int(own["seed"]))
        result["yolov3"] = {"model.head.anchors": group_by_level(anchors, int(own["levels"])),
                            "mean_best_iou": round(mean_best_iou(wh, anchors), 4)}  # fmt: skip
    if own["for"] == "yolov2":
        anchors = kmeans_anchors(wh, int(own["k"]), seed=int(own["seed"]))
        result["yolov2"] = {"model.head.anchors": group_by_level(anchors, 1)[0],
                            "mean_best_iou": round(mean_best_iou(wh, anchors), 4)}  # fmt: skip
    if own["for"] in ("rpn", "all"):
        sizes, ratios = rpn_sizes_and_ratios(wh, int(own["rpn_sizes"]), int(own["rpn_ratios"]))
        result["rpn"] = {
            "model.proposal_generator.anchor_sizes": sizes,
            "model.proposal_generator.aspect_ratios": ratios,
        }
    if own["for"] in ("ssd", "all"):
        ratios, (low, high) = ssd_ratios_and_scales(wh, (size, size), int(own["ssd_ratios"]))
        result["ssd"] = {"model.head.aspect_ratios": ratios, "model.head.min_scale": low, "model.head.max_scale": high}
    return result
