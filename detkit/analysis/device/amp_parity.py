"""Do a detector's boxes stay put under autocast? fp32 and AMP detections of the same images,
matched box to box, and how far the matched corners moved (pixels).

Random weights make scores nearly tied, so a few detections may swap rank or cross the score
threshold under bf16, and NMS then keeps a neighbour instead; those are reported as unmatched
rather than counted as moved. A matched pair is an fp32 and an AMP detection of the same class
that overlap each other best in both directions (mutual best IoU, at least ``min_iou``): a
neighbour that only stands in for a suppressed box is not its own best match.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.ops.iou import box_iou
from detkit.structures import Detections, Target


def corner_shifts(
    reference: Sequence[Detections], other: Sequence[Detections], *, top_k: int = 100, min_iou: float = 0.5
) -> dict:
    """Per-pair corner shifts between ``reference`` and ``other`` detections of the same images.

    For each image, the ``top_k`` best-scoring reference boxes (``boxes: Tensor[K, 4] xyxy``) are
    matched to the same-label ``other`` box of highest IoU when that box's best reference match
    is the same box (mutual best). Returns ``compared`` (reference boxes
    looked at), ``matched``, and over the matched pairs the largest corner shift in pixels:
    ``max_px``, ``p95_px``, ``mean_px`` (None when nothing matched)."""
    shifts, compared = [], 0
    for ref, oth in zip(reference, other, strict=True):
        order = ref["scores"].float().argsort(descending=True)[:top_k]
        ref_boxes, ref_labels = ref["boxes"][order].float().cpu(), ref["labels"][order].cpu()
        compared += len(order)
        oth_boxes, oth_labels = oth["boxes"].float().cpu(), oth["labels"].cpu()
        if len(order) == 0 or len(oth_boxes) == 0:
            continue
        iou = box_iou(ref_boxes, oth_boxes)
        iou[ref_labels[:, None] != oth_labels[None, :]] = -1.0  # only the same class may match
        best_iou, best = iou.max(dim=1)
        mutual = iou.argmax(dim=0)[best] == torch.arange(len(ref_boxes))
        matched = (best_iou >= min_iou) & mutual
        shifts.append((ref_boxes[matched] - oth_boxes[best[matched]]).abs().amax(dim=1))
    moved = torch.cat(shifts) if shifts else torch.zeros(0)
    summary = {"compared": compared, "matched": int(moved.numel()), "max_px": None, "p95_px": None, "mean_px": None}
    if moved.numel():
        summary.update(
            max_px=float(moved.max()), p95_px=float(moved.quantile(0.95)), mean_px=float(moved.mean())
        )
    return summary


@torch.no_grad()
def amp_box_parity(
    model: nn.Module,
    images: Tensor,
    targets: list[Target] | None,
    device: torch.device,
    dtype: torch.dtype,
    *,
    top_k: int = 100,
) -> dict:
    """``model`` (eval mode) on ``images: Tensor[N, 3, H, W]`` in float32 and under autocast to
    ``dtype`` on ``device``; :func:`corner_shifts` of the two."""
    model = model.eval().to(device)
    images = images.to(device)
    if targets is not None:
        targets = [{k: v.to(device) if isinstance(v, Tensor) else v for k, v in t.items()} for t in targets]
    reference = model(images, targets)
    with torch.autocast(device.type, dtype=dtype):
        mixed = model(images, targets)
    return corner_shifts(reference, mixed, top_k=top_k)
