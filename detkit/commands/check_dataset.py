"""Validate a dataset and list every problem in one pass: file, place in the file, reason.

    detkit check data=coco data.train.ann_file=... data.train.img_dir=... output=report.json
    detkit check data=voc data.root=VOCdevkit/VOC2007 split=val output_dir=check/
    detkit check data=yolo data.yaml=data.yaml strict=true

Reads the stored annotations and decodes every image as the loader does (no transform, no
proposal search), with ``on_bad_data=skip`` so that nothing stops it: the report lists every
problem with what training with ``data.on_bad_data=skip`` does about it (box dropped, image
dropped, clipped, kept), and the statistics describe what is left. Prints the problems to stderr
and the JSON report to stdout.

With ``config=EXPERIMENT`` it also reports how well that experiment's anchors / default boxes /
YOLOv3 anchors cover the training boxes at its input size (``prior_coverage``; below
``engine.prior_coverage_warn``, the ``detkit fit-anchors`` command that fits them).

``output=R.json`` writes the report there, with pictures beside it (``R_<split>_box_sizes.png``,
``R_<split>_box_aspect.png``, ``R_<split>_boxes_per_class.png``); ``output_dir=D`` writes
``D/report.json`` and ``D/<split>_*.png``. ``split=train`` (or ``val``) checks one split only.

Exit code 1 when an error-level problem was found (or, with ``strict=true``, any warning), else 0.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from detkit.data.validation.problems import DataError, Problem

# torch-free modules only: the check reads annotations and image files, never tensors.
from detkit.data.validation.summary import check_dataset, problems_text
from detkit.engine.config import ConfigError, load_config, split_arguments


def build_for_check(cfg: DictConfig, split: str):
    """The split's dataset with every problem collected (``on_bad_data=skip``), or the ``DataError``
    of a file without which nothing can be read."""
    if split not in cfg.data:
        raise ConfigError(f"data config {cfg.data.get('name', '?')!r} has no split {split!r}")
    if "on_bad_data" in cfg.data:
        with open_dict(cfg):
            cfg.data.on_bad_data = "skip"
    quiet = logging.getLogger("detkit.data")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the loaders' "skipped ..." summaries: the report lists all of it
    try:
        return instantiate(cfg.data[split], transforms=None)
    except Exception as error:  # instantiate wraps the loader's own error: look at that one
        cause = error.__cause__ or error
        if isinstance(cause, DataError):
            return cause
        if isinstance(cause, (FileNotFoundError, ValueError, KeyError)):
            raise ConfigError(f"cannot build the {split} dataset: {cause}") from None
        raise
    finally:
        quiet.setLevel(level)


def _fatal_report(error: DataError) -> dict:
    return {
        "num_errors": sum(p.severity == "error" for p in error.problems),
        "num_warnings": sum(p.severity == "warning" for p in error.problems),
        "problems": [p.as_dict() for p in error.problems],
    }


def run(argv: list[str]) -> int:
    own, rest = split_arguments(argv, ("output", "output_dir", "split", "strict"))
    splits = [own["split"]] if "split" in own else ["train", "val"]
    strict = own.get("strict", "false").lower() in ("1", "true", "yes")
    cfg = load_config(rest)
    if "output_dir" in own:
        folder, report_path, prefix = Path(own["output_dir"]), Path(own["output_dir"]) / "report.json", ""
    elif "output" in own:
        report_path = Path(own["output"])
        folder, prefix = report_path.parent, f"{report_path.stem}_"
    else:
        folder = report_path = prefix = None
    report, errors, warnings = {}, 0, 0
    for split in splits:
        dataset = build_for_check(cfg, split)
        if isinstance(dataset, DataError):
            report[split] = _fatal_report(dataset)
            problems = dataset.problems
        else:
            report[split] = check_dataset(dataset)
            problems = [Problem.from_dict(p) for p in report[split]["problems"]]
            if folder is not None:
                from detkit.data.validation.plots import draw_check_pictures  # matplotlib: only when asked

                pictures = draw_check_pictures(dataset.records, report[split]["boxes_per_class"], folder,
                                               f"{prefix}{split}_", f"{split} split")
                report[split]["pictures"] = [str(p) for p in pictures]
            if split == "train" and any(a.split("=", 1)[0] == "config" for a in rest):
                # torch is imported only here, when an experiment is named.
                from detkit.analysis.checks.priors import describe_priors

                report["prior_coverage"] = describe_priors(cfg, dataset)
                print(report["prior_coverage"]["line"], file=sys.stderr)
        errors += report[split]["num_errors"]
        warnings += report[split]["num_warnings"]
        print(f"{split}: {report[split]['num_errors']} error(s), {report[split]['num_warnings']} warning(s)",
              file=sys.stderr)
        if problems:
            print(problems_text(problems), file=sys.stderr)
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(text)
        print(f"Report written to {report_path}", file=sys.stderr)
    return 1 if errors or (strict and warnings) else 0
