"""Timing of the postprocessing's NMS on random candidates: the way detkit did it before
(``torchvision.ops.batched_nms`` with the image index folded into the class id, which above
4,000 boxes on CPU and 20,000 on CUDA loops over every (image, class) group) against the two call
patterns of ``detkit.ops.batched_nms``. ``detkit benchmark mode=nms`` runs it.

The work is what a dense head hands over after its per-image top-k: M candidates per image,
each with a random class of C, all above the score threshold.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from detkit.ops.batched_nms import choose_strategy
from detkit.ops.nms import select_padded
from detkit.structures import Detections

# (images, candidates per image): the two cases the benchmark was asked for, 20 classes each.
NMS_CASES = ((8, 1000), (32, 200))
BEFORE = "folded_group_batched_nms (before)"


def random_candidates(num_images: int, num_candidates: int, num_classes: int, *, size: int = 512, seed: int = 0):
    """``boxes: Tensor[N, M, 4] xyxy`` inside a ``size`` px image (sides 8–128 px), ``scores:
    Tensor[N, M]`` in (0, 1), ``labels: Tensor[N, M]`` in 1..C."""
    g = torch.Generator().manual_seed(seed)
    wh = torch.rand(num_images, num_candidates, 2, generator=g) * 120 + 8
    xy = torch.rand(num_images, num_candidates, 2, generator=g) * (size - wh)
    boxes = torch.cat((xy, xy + wh), -1)
    scores = torch.rand(num_images, num_candidates, generator=g)
    labels = torch.randint(1, num_classes + 1, (num_images, num_candidates), generator=g)
    return boxes, scores, labels


def folded_group_nms(
    boxes: Tensor, scores: Tensor, labels: Tensor, *, iou_threshold: float, max_detections: int
) -> list[Detections]:
    """The postprocessing as it was: flat candidates, one ``batched_nms`` with group = image ·
    (C + 1) + class, a stable sort by image, the per-image cap, a split into one dict per image."""
    num_images, num_candidates = scores.shape
    image_index = torch.arange(num_images, device=scores.device)[:, None].expand(-1, num_candidates).reshape(-1)
    flat_boxes, flat_scores, flat_labels = boxes.reshape(-1, 4), scores.reshape(-1), labels.reshape(-1)
    group = image_index * (int(flat_labels.max()) + 1) + flat_labels
    keep = batched_nms(flat_boxes, flat_scores, group, iou_threshold)
    kept_image = image_index[keep]
    order = torch.sort(kept_image, stable=True).indices
    keep, kept_image = keep[order], kept_image[order]
    counts = torch.bincount(kept_image, minlength=num_images)
    rank = torch.arange(keep.numel(), device=keep.device) - (torch.cumsum(counts, 0) - counts)[kept_image]
    capped = rank < max_detections
    keep, kept_image = keep[capped], kept_image[capped]
    sizes = torch.bincount(kept_image, minlength=num_images).tolist()
    return [
        {"boxes": b, "scores": s, "labels": lab}
        for b, s, lab in zip(
            flat_boxes[keep].split(sizes), flat_scores[keep].split(sizes), flat_labels[keep].split(sizes), strict=True
        )
    ]


def nms_timings(
    *,
    device: torch.device,
    cases: tuple[tuple[int, int], ...] = NMS_CASES,
    num_classes: int = 20,
    iou_threshold: float = 0.45,
    max_detections: int = 100,
    repeats: int = 21,
) -> dict[str, dict]:
    """Milliseconds per batch (median, lowest, highest of ``repeats`` calls after one untimed
    checking call) of each way, per case, and each new way's speed-up over the old one (median over median).
    Every way is checked to keep the same number of detections per image before it is timed."""

    results: dict[str, dict] = {}
    for num_images, num_candidates in cases:
        boxes, scores, labels = (t.to(device) for t in random_candidates(num_images, num_candidates, num_classes))
        case = _time_case(
            boxes, scores, labels, iou_threshold=iou_threshold, max_detections=max_detections, repeats=repeats
        )
        case["chosen_for_device"] = choose_strategy(device)
        results[f"{num_images}x{num_candidates}x{num_classes}"] = case
    return results


def _time_case(
    boxes: Tensor, scores: Tensor, labels: Tensor, *, iou_threshold: float, max_detections: int, repeats: int
) -> dict:
    device = scores.device
    valid = torch.ones_like(scores, dtype=torch.bool)
    settings = dict(iou_threshold=iou_threshold, max_detections=max_detections)
    ways = {BEFORE: lambda: folded_group_nms(boxes, scores, labels, **settings)}
    for strategy in ("per_image", "one_call"):
        ways[strategy] = lambda s=strategy: select_padded(
            boxes, scores, labels, valid, strategy=s, **settings
        ).to_list()
    expected = [len(d["scores"]) for d in ways[BEFORE]()]
    case: dict = {}
    for name, way in ways.items():
        if [len(d["scores"]) for d in way()] != expected:
            raise AssertionError(f"{name} keeps other detections than the old postprocessing")
        milliseconds = []
        for _ in range(repeats):
            _sync(device)
            start = time.perf_counter()
            way()
            _sync(device)
            milliseconds.append((time.perf_counter() - start) * 1e3)
        case[name] = {
            "median_ms": statistics.median(milliseconds),
            "min_ms": min(milliseconds),
            "max_ms": max(milliseconds),
        }
    case["speedup_over_before"] = {
        name: case[BEFORE]["median_ms"] / case[name]["median_ms"] for name in ("per_image", "one_call")
    }
    return case


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
