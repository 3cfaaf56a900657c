"""Model outputs -> COCO results, the evaluator's input format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported on use, so evaluating JSON files never loads it
    from detkit.structures import Detections


def detections_to_coco_results(
    detections: Sequence[Detections],
    image_ids: Sequence[int],
    category_ids: Sequence[int],
) -> list[dict]:
    """Convert per-image model outputs to COCO result dicts.

    Args:
        detections: one ``{"boxes": Tensor[K, 4] xyxy, "scores": Tensor[K], "labels": Tensor[K]}``
            per image, boxes already in the stored image's pixels (see
            ``structures.boxes_to_original``), labels in 1..C.
        image_ids: the dataset's image id of each entry of ``detections``.
        category_ids: ``category_ids[label - 1]`` is the ground truth's category id of label.

    Returns:
        ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]`` (COCO ``xywh``);
        an inverted box (x2 < x1 or y2 < y1) gets width/height 0.
    """
    import torch

    if len(detections) != len(image_ids):
        raise ValueError(f"got {len(detections)} detection entries for {len(image_ids)} image ids")
    lookup = torch.as_tensor([0, *category_ids], dtype=torch.int64)  # label 0 (background) never occurs
    results: list[dict] = []
    for image_id, dets in zip(image_ids, detections, strict=True):
        labels = dets["labels"].detach().to("cpu", torch.int64)
        if len(labels) and (labels.min() < 1 or labels.max() > len(category_ids)):
            raise ValueError(
                f"image {image_id}: labels must be in 1..{len(category_ids)}, got {labels.min()}..{labels.max()}"
            )
        boxes = dets["boxes"].detach().to("cpu", torch.float64)
        # An inverted box becomes zero-sized (IoU 0, a false positive) rather than failing the
        # whole evaluation on one bad prediction.
        sizes = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
        xywh = torch.cat([boxes[:, :2], sizes], dim=1).tolist()
        scores = dets["scores"].detach().to("cpu", torch.float64).tolist()
        cats = lookup[labels].tolist()
        results.extend(
            {"image_id": int(image_id), "category_id": c, "bbox": b, "score": s}
            for c, b, s in zip(cats, xywh, scores, strict=True)
        )
    return results
