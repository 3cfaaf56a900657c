"""Fit an R-CNN's per-class SVMs over a training set: the second training stage of the paper.

``fit_svms_for_checkpoint`` is the whole stage behind ``detkit fit-svms``: checkpoint in, fitted
checkpoint out, both classifiers compared on the validation split.

The network stays frozen; ``fit_rcnn_svms`` streams the training images through it once, in
batches, hands each image's proposal and ground-truth features to a ``SVMTrainer`` (hard-negative
mining) and stores the fitted hyperplanes in the head, whose classifier becomes ``svm``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from omegaconf import open_dict
from torch.utils.data import DataLoader, Dataset, Subset

from detkit.data.collate import collate_detection
from detkit.engine.build import build_dataset, config_to_yaml
from detkit.engine.checkpoint import read_checkpoint, save_checkpoint
from detkit.engine.dist import unwrap_model
from detkit.engine.inference import evaluate_model, move_targets
from detkit.engine.runtime import set_cpu_threads
from detkit.heads.class_svms import SVMTrainer

logger = logging.getLogger(__name__)


def fit_rcnn_svms(
    model: torch.nn.Module,
    dataset: Dataset,
    device: torch.device,
    trainer: SVMTrainer,
    *,
    batch_size: int = 8,
    max_images: int | None = None,
    log_every: int = 100,
) -> dict:
    """Mine and fit ``trainer`` on ``dataset`` (a proposal-carrying dataset without augmentation)
    with the features of ``model`` (an ``RCNN`` or ``SPPNet`` whose head was built with
    ``classifier="svm"``), then install the SVMs in the head. Returns ``trainer.summary()`` plus timings."""
    detector = unwrap_model(model)
    head = detector.head
    if getattr(head, "svms", None) is None or not hasattr(detector, "classifier_features"):
        raise ValueError(
            "fitting SVMs needs an R-CNN or SPP-net whose head has classifier=svm (model.head.classifier=svm)"
        )
    if max_images is not None:
        dataset = Subset(dataset, range(min(int(max_images), len(dataset))))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate_detection)
    was_training = detector.training
    detector.eval()
    started = time.perf_counter()
    try:
        for images, targets in loader:
            targets = move_targets(targets, device)
            per_image = detector.classifier_features(images.to(device), targets)
            for (proposals, proposal_features, gt_features), target in zip(per_image, targets, strict=True):
                trainer.add_image(proposal_features, proposals, gt_features, target["boxes"], target["labels"])
            if log_every and trainer.images % log_every < batch_size:
                logger.info("SVM mining: %d / %d images, %s", trainer.images, len(dataset), trainer.summary())
        mined = time.perf_counter()
        svms = trainer.fit()
    finally:
        detector.train(was_training)
    head.svms.load_state_dict(svms.state_dict())
    head.svms.to(device)
    head.classifier = "svm"
    return dict(trainer.summary(), mining_seconds=mined - started, total_seconds=time.perf_counter() - started)


def fit_svms_for_checkpoint(
    checkpoint: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    output: str | Path | None = None,
    cost: float = 1e-3,
    positive_weight: float = 2.0,
    negative_iou: float = 0.3,
    max_images: int | None = None,
    compare: bool = True,
) -> dict:
    """The whole second stage on a trained R-CNN (or SPP-net) checkpoint: load it (strictly), fit
    the SVMs on its training split, write a checkpoint whose config scores with them (default ``svm.pt``
    beside the input), and with ``compare`` evaluate the validation split with both classifiers.
    Returns ``{"svm_fit": summary, "output": path, "softmax": metrics, "svm": metrics}``."""
    from detkit.engine.loading import load_detector

    source = Path(checkpoint)
    predictor = load_detector(source, overrides=overrides)
    model, cfg = predictor.model, predictor.cfg
    if not hasattr(model, "classifier_features") or not hasattr(getattr(model, "head", None), "add_svms"):
        raise ValueError(f"{source} is not an R-CNN checkpoint nor an SPP-net one (model {cfg.model.get('_target_')})")
    set_cpu_threads(cfg)
    with open_dict(cfg):
        cfg.model.head.classifier = "svm"
    model.head.add_svms()
    names = predictor.class_names
    trainer = SVMTrainer(len(names), cost=cost, positive_weight=positive_weight, negative_iou=negative_iou)
    batch_size = int(cfg.data.batch_size)
    train_set = build_dataset(cfg, "train", augment=False)
    summary = fit_rcnn_svms(model, train_set, predictor.device, trainer, batch_size=batch_size, max_images=max_images)
    state = read_checkpoint(source)
    output = Path(output) if output is not None else source.with_name("svm.pt")
    save_checkpoint(
        output,
        model=model,
        iteration=int(state.get("iteration", 0)),
        epoch=int(state.get("epoch", 0)),
        config_yaml=config_to_yaml(cfg),
        class_names=names,
        extra={"svm_fit": summary, "svm_source_checkpoint": str(source)},
    )
    results: dict = {"svm_fit": summary, "output": str(output)}
    if compare:
        val_set = build_dataset(cfg, "val")
        for classifier in ("softmax", "svm"):
            model.head.classifier = classifier
            results[classifier] = evaluate_model(
                model, val_set, predictor.device, batch_size=batch_size, amp_dtype=predictor.amp_dtype
            )
    return results
