"""Run an exported file and compare its detections with the PyTorch model's.

The exported file runs on its own runtime (onnxruntime for ONNX, ``torch.jit.load`` for
TorchScript, ``torch.export.load`` for ``.pt2``); the reference is the detector itself in
``eval()`` mode, called as in ``tools/predict.py``. Detections of each image are compared in a
canonical order (descending score, then label and box, so that exactly tied scores do not count
as differences) over the first ``min(count_exported, count_pytorch)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from detkit.export.samples import padded_proposals


def graph_inputs(images: Tensor, proposals: Sequence[Tensor] | None) -> tuple[Tensor, ...]:
    """The graph's inputs for ``images: Tensor[n, 3, S, S]`` (plus padded proposals when given)."""
    if proposals is None:
        return (images,)
    boxes, counts = padded_proposals(proposals)
    return images, boxes.to(images.device), counts.to(images.device)


def run_exported(path: str | Path, format: str, inputs: Sequence[Tensor], input_names: Sequence[str]) -> list[np.ndarray]:
    """Outputs ``[boxes, scores, labels, num_detections]`` of the exported file, as numpy arrays."""
    path = Path(path)
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {name: tensor.detach().cpu().numpy() for name, tensor in zip(input_names, inputs, strict=True)}
        return list(session.run(None, feed))
    with torch.no_grad():
        if format == "torchscript":
            device = inputs[0].device
            outputs = torch.jit.load(str(path), map_location=device)(*inputs)
        elif format == "pt2":
            outputs = torch.export.load(str(path)).module()(*inputs)
        else:
            raise ValueError(f"unknown export format {format!r}")
    return [output.detach().cpu().numpy() for output in outputs]


@torch.no_grad()
def reference_outputs(model: nn.Module, images: Tensor, proposals: Sequence[Tensor] | None) -> list[dict[str, np.ndarray]]:
    """The PyTorch model's detections of each image (numpy), from its regular inference path."""
    targets = None if proposals is None else [{"proposals": p.to(images.device)} for p in proposals]
    detections = model.eval()(images, targets)
    return [{key: value.detach().cpu().numpy() for key, value in det.items()} for det in detections]


def _canonical(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row order by descending score, then label and box: the same for two runs that differ only
    in how exactly equal scores were ordered."""
    keys = [boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], labels, -scores]
    return np.lexsort(keys) if len(scores) else np.zeros(0, np.int64)


def compare_detections(
    exported: Sequence[np.ndarray], reference: Sequence[dict[str, np.ndarray]], max_detections: int
) -> dict:
    """Largest box and score differences, and whether counts and labels agree, between the
    exported outputs ``[boxes [n, K, 4], scores [n, K], labels [n, K], num_detections [n]]`` and
    the reference's per-image detections (their first K, which are the best K)."""
    boxes, scores, labels, counts = exported
    box_diff = score_diff = 0.0
    labels_agree = padding_zero = True
    exported_counts, reference_counts = [], []
    for index, det in enumerate(reference):
        count = int(counts[index])
        want = min(len(det["scores"]), max_detections)
        exported_counts.append(count)
        reference_counts.append(want)
        got_order = _canonical(boxes[index, :count], scores[index, :count], labels[index, :count])
        ref = {key: value[:want] for key, value in det.items()}
        ref_order = _canonical(ref["boxes"], ref["scores"], ref["labels"])
        shared = min(count, want)
        got_order, ref_order = got_order[:shared], ref_order[:shared]
        if shared:
            box_diff = max(box_diff, float(np.abs(boxes[index, got_order] - ref["boxes"][ref_order]).max()))
            score_diff = max(score_diff, float(np.abs(scores[index, got_order] - ref["scores"][ref_order]).max()))
            labels_agree &= bool((labels[index, got_order] == ref["labels"][ref_order]).all())
        # A consumer may read all K rows: the padding must be zeros (label 0 is background).
        padding_zero &= not (boxes[index, count:].any() or scores[index, count:].any() or labels[index, count:].any())
    return {
        "max_box_diff": box_diff,
        "max_score_diff": score_diff,
        "counts_agree": exported_counts == reference_counts,
        "labels_agree": labels_agree,
        "padding_zero": padding_zero,
        "counts_exported": exported_counts,
        "counts_pytorch": reference_counts,
        "detections": int(sum(reference_counts)),
    }
