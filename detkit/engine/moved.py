"""Where classes and functions went when they moved, so that configs stored before a move still build.

A checkpoint (and a run's ``config.yaml``) stores the resolved config, whose ``_target_`` entries
are import paths. When one of them moves, an entry here maps its old path to the new one, and
:func:`update_moved_targets` rewrites a stored config as it is read back
(``detkit.engine.config.config_from_yaml``). Add an entry whenever something a config can name
moves; never remove one, since checkpoints outlive the code that wrote them.

Torch-free, like ``detkit.engine.config``.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, ListConfig, OmegaConf

logger = logging.getLogger(__name__)

# Old import path → new one. A key is a whole module (everything in it moved along) or one name.
MOVED: dict[str, str] = {
    # The data side of proposals left detkit.proposals for detkit.data.proposals.
    "detkit.proposals.cache": "detkit.data.proposals.cache",
    "detkit.proposals.compute": "detkit.data.proposals.compute",
    "detkit.proposals.recall": "detkit.data.proposals.recall",
    "detkit.proposals.selective_search": "detkit.data.proposals.selective_search",
    "detkit.proposals.with_proposals": "detkit.data.proposals.with_proposals",
    # IoU in every form in ops/iou.py; the conv-BN-LeakyReLU block in layers/.
    "detkit.ops.boxes.box_iou": "detkit.ops.iou.box_iou",
    "detkit.ops.boxes.batched_box_iou": "detkit.ops.iou.batched_box_iou",
    "detkit.assign.yolo.elementwise_box_iou": "detkit.ops.iou.elementwise_box_iou",
    "detkit.assign.yolo.shape_iou": "detkit.ops.iou.shape_iou",
    "detkit.necks.yolov3_fpn.ConvBNLeaky": "detkit.layers.conv_bn_act.ConvBNLeaky",
    # The layering of docs/ARCHITECTURE.md: data formats, augmentation, validation and synthetic data in
    # sub-packages of data/; presentation in reporting/; jobs and analysis tools out of engine/, utils/ and
    # evaluation/.
    "detkit.heads.proposal_head.ProposalHead": "detkit.heads.roi_head_base.RoIHeadBase",
    "detkit.heads.proposal_head": "detkit.heads.roi_head_base",
    "detkit.utils.amp_parity": "detkit.analysis.device.amp_parity",
    "detkit.utils.sync_count": "detkit.analysis.device.sync_count",
    "detkit.utils.device_checks": "detkit.analysis.device.detector_checks",
    "detkit.utils.check_batches": "detkit.analysis.device.check_batches",
    "detkit.utils.benchmark": "detkit.analysis.speed.throughput",
    "detkit.utils.benchmark_nms": "detkit.analysis.speed.nms",
    "detkit.utils.rcnn_speed": "detkit.analysis.speed.rcnn",
    "detkit.evaluation.benchmark": "detkit.analysis.speed.evaluators",
    "detkit.utils.window_comparison": "detkit.analysis.checks.windows",
    "detkit.evaluation.lineage": "detkit.analysis.lineage.table",
    "detkit.evaluation.lineage_report": "detkit.analysis.lineage.report",
    "detkit.evaluation.report": "detkit.reporting.report",
    "detkit.evaluation.plots": "detkit.reporting.plots",
    "detkit.evaluation.training_log": "detkit.reporting.training_log",
    "detkit.evaluation.run_comparison": "detkit.reporting.run_comparison",
    "detkit.evaluation.error_report": "detkit.reporting.error_report",
    "detkit.evaluation.galleries": "detkit.reporting.galleries",
    "detkit.evaluation.html_parts": "detkit.reporting.html_parts",
    "detkit.evaluation.html_report": "detkit.reporting.html_report",
    "detkit.evaluation.html_compare": "detkit.reporting.html_compare",
    "detkit.engine.launch": "detkit.jobs.train_and_evaluate",
    "detkit.engine.rcnn_svms": "detkit.jobs.fit_svms",
    "detkit.engine.prior_check": "detkit.analysis.checks.priors",
    "detkit.data.coco": "detkit.data.formats.coco",
    "detkit.data.voc": "detkit.data.formats.voc",
    "detkit.data.yolo": "detkit.data.formats.yolo",
    "detkit.data.transforms": "detkit.data.augment.transforms",
    "detkit.data.mosaic": "detkit.data.augment.mosaic",
    "detkit.data.mixup": "detkit.data.augment.mixup",
    "detkit.data.wrapper": "detkit.data.augment.wrapper",
    "detkit.data.problems": "detkit.data.validation.problems",
    "detkit.data.box_checks": "detkit.data.validation.box_checks",
    "detkit.data.image_check_cache": "detkit.data.validation.image_check_cache",
    "detkit.data.checks": "detkit.data.validation.summary",
    "detkit.data.check_plots": "detkit.data.validation.plots",
    "detkit.data.shapes": "detkit.data.synthetic.shapes",
    "detkit.data.shapes_render": "detkit.data.synthetic.shapes_render",
    "detkit.data.shapes_writers": "detkit.data.synthetic.shapes_writers",
    "detkit.data.scenes": "detkit.data.synthetic.scenes",
    "detkit.data.scenes_render": "detkit.data.synthetic.scenes_render",
}


def moved_target(path: str, moved: dict[str, str] | None = None) -> str:
    """The current import path of ``path`` (``path`` itself when it never moved), following
    successive moves. The longest key that equals ``path`` or a leading run of its dotted parts
    wins: ``a.b`` → ``c.d`` maps ``a.b.Thing`` to ``c.d.Thing``, but not ``a.bc.Thing``."""
    moved = MOVED if moved is None else moved
    seen = {path}
    while True:
        parts = path.split(".")
        for end in range(len(parts), 0, -1):
            new = moved.get(".".join(parts[:end]))
            if new is not None:
                path = ".".join([new, *parts[end:]])
                break
        else:
            return path
        if path in seen:
            raise ValueError(f"the moved-paths table goes round in a circle through {path!r}")
        seen.add(path)


def update_moved_targets(cfg: DictConfig | ListConfig) -> list[tuple[str, str]]:
    """Rewrite, in place, every ``_target_`` of ``cfg`` that names something that moved; return
    the ``(old, new)`` pairs (logged, so that a run says which old paths it translated)."""
    changes: list[tuple[str, str]] = []
    _update(cfg, changes)
    for old, new in changes:
        logger.info("Stored config names %s, which moved to %s; using the new path.", old, new)
    return changes


def _update(node: DictConfig | ListConfig, changes: list[tuple[str, str]]) -> None:
    keys = node.keys() if isinstance(node, DictConfig) else range(len(node))
    for key in list(keys):
        if OmegaConf.is_interpolation(node, key) or OmegaConf.is_missing(node, key):
            continue  # a reference to another entry (visited in its own place), or no value yet
        value = node[key]
        if isinstance(value, DictConfig | ListConfig):
            _update(value, changes)
        elif key == "_target_" and isinstance(value, str):
            new = moved_target(value)
            if new != value:
                node[key] = new
                changes.append((value, new))
