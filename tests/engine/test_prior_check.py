"""The prior check before training: the warning with its fix, and the refit that raises coverage."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
from omegaconf import OmegaConf

from detkit.analysis.checks.priors import check_priors, describe_priors
from detkit.data.base import ImageRecord
from detkit.engine.build import build_model
from detkit.engine.config import load_config
from detkit.priors.coverage import model_priors
from tests.data.log_capture import capture_log


class _Records(SimpleNamespace):
    """What the prior check reads of a dataset: records, class names, length."""

    def __len__(self) -> int:
        return len(self.records)


def _dataset(boxes_per_image: list[list[list[float]]], size: int = 160) -> _Records:
    records = [
        ImageRecord(path=Path(f"/nowhere/{i}.jpg"), file_name=f"{i}.jpg", image_id=i + 1, width=size, height=size,
                    boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4), labels=np.ones(len(boxes), np.int64),
                    annotation_file="planted.json")  # fmt: skip
        for i, boxes in enumerate(boxes_per_image)
    ]
    return _Records(records=records, class_names=["a", "b"])


def _tiny_boxes() -> _Records:
    """6-8 px boxes centred on stride-8 cell centres: the recipe's 16/40/96 px anchors reach at most
    64/256 = 0.25 IoU with them (under 0.5: none covered); anchors of their own size cover them all."""
    images = []
    for i in range(12):
        side = 6 + i % 3
        cx, cy = 8 * (i + 2) + 4, 8 * (i % 5 + 3) + 4
        images.append([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])
    return _dataset(images)


def test_low_coverage_warns_with_the_fit_anchors_command() -> None:
    cfg = load_config(["config=faster_rcnn_mobilenet_v1_shapes"])
    model = build_model(cfg, num_classes=2)
    with capture_log("detkit") as lines:
        kept, report = check_priors(cfg, model, _tiny_boxes(), lambda c: build_model(c, num_classes=2))
    assert kept is model and report["coverage"]["recall"] == 0.0
    expected = "detkit fit-anchors config=faster_rcnn_mobilenet_v1_shapes data=shapes for=rpn"
    assert report["fit_command"] == expected
    assert any("below engine.prior_coverage_warn=0.7" in line and expected in line for line in lines)
    assert "refit" not in report  # engine.refit_priors is off by default
    assert describe_priors(cfg, _tiny_boxes(), model)["fit_command"] == expected


def test_refit_raises_coverage_and_lands_in_the_config() -> None:
    cfg = load_config(["config=faster_rcnn_mobilenet_v1_shapes", "engine.refit_priors=true"])
    model = build_model(cfg, num_classes=2)
    refit_model, report = check_priors(cfg, model, _tiny_boxes(), lambda c: build_model(c, num_classes=2))
    assert report["refit"]["kept"] and refit_model is not model
    assert report["coverage"]["recall"] == 0.0 and report["refit"]["coverage"]["recall"] == 1.0
    sizes = list(cfg.model.proposal_generator.anchor_sizes)
    assert sizes == report["refit"]["values"]["model.proposal_generator.anchor_sizes"]
    assert 6 <= min(sizes) and max(sizes) <= 8
    # A model rebuilt from the saved config (what a checkpoint reloads) has the refit anchors.
    rebuilt = build_model(OmegaConf.create(OmegaConf.to_yaml(cfg)), num_classes=2)
    assert model_priors(rebuilt, 160).boxes.equal(model_priors(refit_model, 160).boxes)


def test_a_refit_that_covers_no_more_is_not_kept() -> None:
    cfg = load_config(["config=yolov3_resnet18_shapes", "engine.refit_priors=true", "engine.prior_coverage_warn=1.01"])
    anchors = OmegaConf.to_container(cfg.model.head.anchors)
    # One box of each anchor's exact shape: the experiment's anchors cover all of them already.
    boxes = [[[10, 10, 10 + w, 10 + h]] for level in anchors for w, h in level]
    model = build_model(cfg, num_classes=2)
    kept, report = check_priors(cfg, model, _dataset(boxes), lambda c: build_model(c, num_classes=2))
    assert kept is model and report["coverage"]["recall"] == 1.0
    assert report["refit"]["kept"] is False
    assert OmegaConf.to_container(cfg.model.head.anchors) == anchors


def test_yolov2_refit_keeps_its_one_grid_of_anchors() -> None:
    """YOLOv2's anchors are one flat list of (w, h) pairs, not a list per level: the refit keeps
    that form (the ImageNet-start recipe refits on the user's data, and a nested list would not build)."""
    cfg = load_config(["config=yolov2_mobilenet_v1_shapes", "engine.refit_priors=true"])
    count = len(cfg.model.head.anchors)
    model = build_model(cfg, num_classes=2)
    refit_model, report = check_priors(cfg, model, _tiny_boxes(), lambda c: build_model(c, num_classes=2))
    assert report["refit"]["kept"] and refit_model is not model
    fitted = OmegaConf.to_container(cfg.model.head.anchors)
    assert len(fitted) == count and all(len(pair) == 2 and all(5 <= v <= 9 for v in pair) for pair in fitted)


def test_detectors_without_priors_say_so() -> None:
    cfg = load_config(["config=yolov1_mobilenet_v1_shapes"])
    model = build_model(cfg, num_classes=2)
    kept, report = check_priors(cfg, model, _tiny_boxes(), lambda c: build_model(c, num_classes=2))
    assert kept is model and report["priors"] is None and "YOLOv1" in report["note"]


def test_check_command_reports_the_experiments_coverage(tmp_path: Path, capsys) -> None:
    import json

    from detkit.cli import main
    from detkit.data.synthetic.scenes import write_scenes
    from detkit.data.synthetic.scenes_render import ScenesParams

    params = ScenesParams(num_train=3, num_val=1, min_side=64, max_side=96, max_size=48, tiny_size=(6, 9), seed=2)
    coco = write_scenes(tmp_path, params, ("coco",)) / "coco"
    ann_file = coco / "annotations" / "instances_train.json"
    data = ["data=coco", f"data.train.ann_file={ann_file}", f"data.train.img_dir={coco / 'train'}"]  # input_size: auto
    assert main(["check", "config=yolov3_resnet18_shapes", *data, "split=train"]) == 0
    out = capsys.readouterr()
    report = json.loads(out.out)
    coverage = report["prior_coverage"]["coverage"]
    assert coverage["kind"] == "yolov3"
    assert coverage["boxes"] == len(json.loads(ann_file.read_text())["annotations"]) > 0
    assert "prior coverage: YOLO anchors cover" in out.err
    # Without an experiment named, no model is built and nothing is said about priors.
    assert main(["check", *data, "split=train"]) == 0
    assert "prior_coverage" not in json.loads(capsys.readouterr().out)


def test_a_grid_too_coarse_for_the_boxes_asks_for_a_larger_input_not_a_refit() -> None:
    # 16 px boxes halfway between the stride-8 cell centres: the recipe's 16 px anchors fit their
    # shape exactly, but every placed anchor is 4 px off in x and y (IoU 144/368 < 0.5).
    cfg = load_config(["config=faster_rcnn_mobilenet_v1_shapes", "engine.refit_priors=true"])
    images = [[[8 * i + 8 - 8, 8 * i + 8 - 8, 8 * i + 8 + 8, 8 * i + 8 + 8]] for i in range(1, 12)]
    model = build_model(cfg, num_classes=2)
    with capture_log("detkit") as lines:
        kept, report = check_priors(cfg, model, _dataset(images), lambda c: build_model(c, num_classes=2))
    assert kept is model and "refit" not in report and "fit_command" not in report
    assert report["coverage"]["recall"] == 0.0 and report["coverage"]["shape_recall"] == 1.0
    assert any("grid is too coarse" in line and "data.input_size" in line for line in lines)
