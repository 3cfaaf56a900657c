"""Fit an R-CNN's per-class SVMs over a training set: the second training stage of the paper.

The network stays frozen; ``fit_rcnn_svms`` streams the training images through it once, in
batches, hands each image's proposal and ground-truth features to a ``SVMTrainer`` (hard-negative
mining) and stores the fitted hyperplanes in the head, whose classifier becomes ``svm``.
"""

from __future__ import annotations

import logging
import time

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from detkit.data.collate import collate_detection
from detkit.engine.dist import unwrap_model
from detkit.engine.inference import move_targets
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
    with the features of ``model`` (an ``RCNN`` whose head was built with ``classifier="svm"``),
    then install the SVMs in the head. Returns ``trainer.summary()`` plus timings."""
    detector = unwrap_model(model)
    head = detector.head
    if getattr(head, "svms", None) is None or not hasattr(detector, "classifier_features"):
        raise ValueError(
            "fitting SVMs needs an R-CNN whose head has classifier=svm (model.head.classifier=svm)"
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
