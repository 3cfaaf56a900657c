"""Run an exported file and compare its detections with the PyTorch model's.

The exported file runs on its own runtime (onnxruntime for ONNX, ``torch.jit.load`` for
TorchScript, ``torch.export.load`` for ``.pt2``); the reference is the detector itself in
``eval()`` mode, called as in ``tools/predict.py``. The detections of each image are paired by
content (label, box, score), not by rank: two runtimes may order nearly equal scores differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from detkit.export.samples import padded_proposals
from detkit.export.writers import quiet_tracing

# What "the exported file agrees with PyTorch" means (input pixels; score units).
BOX_TOLERANCE = 1e-3
SCORE_TOLERANCE = 1e-4


def graph_inputs(images: Tensor, proposals: Sequence[Tensor] | None) -> tuple[Tensor, ...]:
    """The graph's inputs for ``images: Tensor[n, 3, S, S]`` (plus padded proposals when given)."""
    if proposals is None:
        return (images,)
    boxes, counts = padded_proposals(proposals)
    return images, boxes.to(images.device), counts.to(images.device)


def run_exported(
    path: str | Path, format: str, inputs: Sequence[Tensor], input_names: Sequence[str]
) -> list[np.ndarray]:
    """Outputs ``[boxes, scores, labels, num_detections]`` of the exported file, as numpy arrays."""
    path = Path(path)
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {name: tensor.detach().cpu().numpy() for name, tensor in zip(input_names, inputs, strict=True)}
        return list(session.run(None, feed))
    with torch.no_grad(), quiet_tracing():
        if format == "torchscript":
            device = inputs[0].device
            outputs = torch.jit.load(str(path), map_location=device)(*inputs)
        elif format == "pt2":
            outputs = torch.export.load(str(path)).module()(*inputs)
        else:
            raise ValueError(f"unknown export format {format!r}")
    return [output.detach().cpu().numpy() for output in outputs]


@torch.no_grad()
def reference_outputs(
    model: nn.Module, images: Tensor, proposals: Sequence[Tensor] | None
) -> list[dict[str, np.ndarray]]:
    """The PyTorch model's detections of each image (numpy), from its regular inference path."""
    targets = None if proposals is None else [{"proposals": p.to(images.device)} for p in proposals]
    detections = model.eval()(images, targets)
    return [{key: value.detach().cpu().numpy() for key, value in det.items()} for det in detections]


def pair_detections(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, reference: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Pair each detection with one of the reference's: same label, and the smallest difference
    in units of the tolerances (box px / ``BOX_TOLERANCE``, score / ``SCORE_TOLERANCE``), best
    pairs first. Returns the indices of the pairs. Two runtimes order (nearly) equal scores
    differently, so detections are paired by content, not by rank."""
    box_cost = np.abs(boxes[:, None, :] - reference["boxes"][None, :, :]).max(axis=2, initial=0.0) / BOX_TOLERANCE
    score_cost = np.abs(scores[:, None] - reference["scores"][None, :]) / SCORE_TOLERANCE
    cost = np.where(labels[:, None] == reference["labels"][None, :], np.maximum(box_cost, score_cost), np.inf)
    mine, theirs = [], []
    taken_mine, taken_theirs = set(), set()
    for flat in np.argsort(cost, axis=None, kind="stable"):
        i, j = np.unravel_index(flat, cost.shape)
        if not np.isfinite(cost[i, j]):
            break
        if i not in taken_mine and j not in taken_theirs:
            taken_mine.add(i)
            taken_theirs.add(j)
            mine.append(i)
            theirs.append(j)
    return np.array(mine, np.int64), np.array(theirs, np.int64)


def compare_detections(
    exported: Sequence[np.ndarray], reference: Sequence[dict[str, np.ndarray]], max_detections: int
) -> dict:
    """Compare the exported outputs ``[boxes [n, K, 4], scores [n, K], labels [n, K],
    num_detections [n]]`` with the reference's per-image detections (their first K, the best K).

    Detections are paired by ``pair_detections``. ``max_box_diff`` and ``max_score_diff`` are
    the largest differences over all pairs; ``labels_agree``: every detection found a partner of
    its label. ``tie_breaks`` counts the pairs whose boxes differ beyond ``BOX_TOLERANCE`` but
    whose scores agree and whose boxes overlap: two candidates of one score (RoI pooling gives
    proposals that fall into the same cells identical features) of which NMS kept the other one;
    ``max_box_diff_untied`` leaves them out.
    """
    boxes, scores, labels, counts = exported
    box_diffs, score_diffs, ties = [0.0], [0.0], 0
    untied_box_diffs = [0.0]
    unpaired = 0
    padding_zero = True
    exported_counts, reference_counts = [], []
    for index, det in enumerate(reference):
        count = int(counts[index])
        ref = {key: value[:max_detections] for key, value in det.items()}
        exported_counts.append(count)
        reference_counts.append(len(ref["scores"]))
        mine, theirs = pair_detections(boxes[index, :count], scores[index, :count], labels[index, :count], ref)
        unpaired += max(count, len(ref["scores"])) - len(mine)
        if len(mine):
            pair_boxes = np.abs(boxes[index, mine] - ref["boxes"][theirs]).max(axis=1)
            pair_scores = np.abs(scores[index, mine] - ref["scores"][theirs])
            tied = (
                (pair_boxes > BOX_TOLERANCE)
                & (pair_scores <= SCORE_TOLERANCE)
                & (_pair_iou(boxes[index, mine], ref["boxes"][theirs]) > 0)
            )
            ties += int(tied.sum())
            box_diffs.append(float(pair_boxes.max()))
            score_diffs.append(float(pair_scores.max()))
            untied_box_diffs.append(float(pair_boxes[~tied].max(initial=0.0)))
        # A consumer may read all K rows: the padding must be zeros (label 0 is background).
        padding_zero &= not (boxes[index, count:].any() or scores[index, count:].any() or labels[index, count:].any())
    return {
        "max_box_diff": max(box_diffs),
        "max_score_diff": max(score_diffs),
        "counts_agree": exported_counts == reference_counts,
        "labels_agree": unpaired == 0,
        "padding_zero": padding_zero,
        "tie_breaks": ties,
        "max_box_diff_untied": max(untied_box_diffs),
        "counts_exported": exported_counts,
        "counts_pytorch": reference_counts,
        "detections": int(sum(reference_counts)),
    }


def _pair_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of ``boxes1[i]`` with ``boxes2[i]`` (both ``[M, 4]`` xyxy)."""
    low = np.maximum(boxes1[:, :2], boxes2[:, :2])
    high = np.minimum(boxes1[:, 2:], boxes2[:, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=1)
    area1 = np.prod(np.clip(boxes1[:, 2:] - boxes1[:, :2], 0, None), axis=1)
    area2 = np.prod(np.clip(boxes2[:, 2:] - boxes2[:, :2], 0, None), axis=1)
    return inter / np.maximum(area1 + area2 - inter, 1e-9)
