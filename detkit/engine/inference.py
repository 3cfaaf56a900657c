"""Run a detector over a dataset and score it: the loop behind periodic evaluation, the final
metrics of a training run and ``tools/eval.py checkpoint=…``.

Distributed: every rank predicts a disjoint slice of the images (no padding duplicates, which
would count twice), the COCO results are gathered on rank 0 only, and rank 0 scores them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from detkit.data.collate import collate_detection
from detkit.engine.dist import gather_object_to_main, get_rank, get_world_size, is_main_process, unwrap_model
from detkit.evaluation import detections_to_coco_results, evaluate
from detkit.evaluation.localization import localization_metrics_from_coco
from detkit.structures import Detections, Target, boxes_to_original, detections_to_host

logger = logging.getLogger(__name__)


def move_targets(targets: Sequence[Target], device: torch.device) -> list[Target]:
    return [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets]


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    *,
    amp_dtype: torch.dtype | None = None,
    on_batch: Callable[[torch.Tensor, list[Target], list[Detections]], None] | None = None,
) -> tuple[list[Detections], list[Target], float]:
    """Predictions for every image of ``loader``, mapped back to the stored images' pixels, with
    their targets; and the pure model time in seconds (images/s = len / time)."""
    was_training = model.training
    model.eval()
    outputs: list[Detections] = []
    targets_out: list[Target] = []
    model_seconds = 0.0
    try:
        for images, targets in loader:
            images = images.to(device, non_blocking=True)
            moved = move_targets(targets, device)
            start = time.perf_counter()
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                detections = model(images, moved)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            model_seconds += time.perf_counter() - start
            if on_batch is not None:
                on_batch(images, targets, detections)
            for det, target in zip(detections_to_host(detections), targets, strict=True):
                outputs.append(
                    {"boxes": boxes_to_original(det["boxes"], target), "scores": det["scores"], "labels": det["labels"]}
                )
                targets_out.append(target)
    finally:
        model.train(was_training)
    return outputs, targets_out, model_seconds


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    device: torch.device,
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    amp_dtype: torch.dtype | None = None,
    return_results: bool = False,
) -> dict | tuple[dict, list[dict]]:
    """COCO and VOC metrics of ``model`` on ``dataset`` (a detkit dataset: ``coco_ground_truth()``,
    ``category_ids``). Returns the evaluator's dict plus ``images_per_second`` (model only) on
    rank 0; other ranks return ``{}``. A single-object localiser (``is_localizer``) also gets
    ``"localization"``: classification error, box distances, mean IoU. With ``return_results``, also
    the COCO results list the metrics were computed from (for the evaluation report):
    ``(metrics, results)``."""
    world, rank = get_world_size(), get_rank()
    shard = Subset(dataset, range(rank, len(dataset), world)) if world > 1 else dataset
    loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_detection, pin_memory=device.type == "cuda")  # fmt: skip
    detections, targets, seconds = predict_batches(unwrap_model(model), loader, device, amp_dtype=amp_dtype)
    category_ids = _category_ids(dataset)
    per_image = [
        detections_to_coco_results([d], [int(t["image_id"])], category_ids)
        for d, t in zip(detections, targets, strict=True)
    ]
    if world > 1:
        parts = gather_object_to_main((per_image, seconds))
        if not is_main_process():
            return ({}, []) if return_results else {}
        # Back into the dataset's order (rank r scored images r, r + world, ...), so that the
        # evaluation sees exactly what a single process would, ties between scores included.
        per_image = [parts[index % world][0][index // world] for index in range(len(dataset))]
        seconds = max(part_seconds for _, part_seconds in parts)
    results = [result for image_results in per_image for result in image_results]
    ground_truth = dataset.coco_ground_truth()
    metrics = evaluate(ground_truth, results)
    if is_localizer(model):
        metrics["localization"] = localization_metrics_from_coco(ground_truth, results)
    metrics["images_per_second"] = len(dataset) / seconds if seconds > 0 else None
    return (metrics, results) if return_results else metrics


def is_localizer(model: nn.Module) -> bool:
    """Whether ``model`` predicts one object per image (a single-object localiser), whose evaluation
    adds the classification + localisation metrics (``detkit.evaluation.localization``)."""
    return any(getattr(module, "single_object", False) for module in unwrap_model(model).modules())


def _category_ids(dataset: Dataset) -> list[int]:
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return list(dataset.category_ids)
