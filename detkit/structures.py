"""The data types every part of detkit exchanges, and the conventions they follow.

Boxes
    ``xyxy``, float32, absolute pixels of the image the tensor describes, continuous
    coordinates: a box covering pixel columns 0..9 is ``x1=0, x2=10`` (no "+1"). Other
    formats exist only at the edges: COCO files use ``xywh``, VOC files 1-based inclusive
    pixels, YOLO files normalised ``cxcywh``; the dataset readers and box coders convert.

Labels
    Contiguous ``1..C`` for the C object classes; ``0`` is background. Softmax heads use the
    background class, sigmoid heads ignore it. A dataset keeps ``class_names`` (``class_names[i]``
    is label ``i + 1``) and the mapping back to its own category ids, which the evaluator uses.

Target (one per image, what a dataset yields beside the image tensor)
    ``boxes``      Tensor[N, 4] float32 xyxy in the (transformed) image's pixels; N may be 0.
    ``labels``     Tensor[N] int64 in 1..C.
    ``image_id``   int, the dataset's id of the image (COCO image id).
    ``difficult``  optional Tensor[N] bool; ``iscrowd`` optional Tensor[N] bool. Training
                   ignores both; evaluation honours them.
    ``proposals``  optional Tensor[P, 4] float32 xyxy precomputed proposals (Fast R-CNN, R-CNN).
    ``orig_size``  optional Tensor[2] int64 (height, width) of the image as stored on disk.
    ``scale``      optional Tensor[2] float32 (sx, sy): transformed = original * scale. Padding,
                   when any, is added at the right and bottom, so mapping back is a division.

Detections (one per image, what a detector returns in ``eval()`` mode)
    ``boxes`` Tensor[K, 4] xyxy in the input image's pixels, ``scores`` Tensor[K] float32,
    ``labels`` Tensor[K] int64 in 1..C.

Shape shorthand used in docstrings: N images, A anchors/priors, P proposals, R RoIs,
S grid size, C classes, K kept detections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired, TypedDict

from torch import Tensor


class Target(TypedDict):
    boxes: Tensor
    labels: Tensor
    image_id: int
    difficult: NotRequired[Tensor]
    iscrowd: NotRequired[Tensor]
    proposals: NotRequired[Tensor]
    orig_size: NotRequired[Tensor]
    scale: NotRequired[Tensor]


class Detections(TypedDict):
    boxes: Tensor
    scores: Tensor
    labels: Tensor


@dataclass(frozen=True)
class FeatureInfo:
    """One output of a backbone or neck: its dict key, channel count and stride in pixels."""

    name: str
    channels: int
    stride: int


def boxes_to_original(boxes: Tensor, target: Target) -> Tensor:
    """Map ``boxes: Tensor[K, 4] xyxy`` from the transformed image back to the stored image.

    Uses ``target["scale"]`` (sx, sy) and clips to ``target["orig_size"]`` when present; a
    target without ``scale`` is returned unchanged (the model saw the stored image).
    """
    if "scale" not in target:
        return boxes
    sx, sy = (float(v) for v in target["scale"])
    out = boxes / boxes.new_tensor([sx, sy, sx, sy])
    if "orig_size" in target:
        height, width = (float(v) for v in target["orig_size"])
        out[:, 0::2] = out[:, 0::2].clamp(0, width)
        out[:, 1::2] = out[:, 1::2].clamp(0, height)
    return out


def detections_to_host(detections: list[Detections]) -> list[Detections]:
    """A batch's detections on the CPU (boxes and scores float32, labels int64), copied from the
    device in one transfer instead of three per image: every copy waits for the device. (On a CPU
    the packing is one small copy: at most max_detections rows per image.)"""
    import torch  # here: the rest of this module only names types

    if not detections:
        return []
    # Labels travel as float32 beside the boxes and scores: exact for any class count below 2**24.
    packed = torch.cat(
        [
            torch.cat((d["boxes"].float(), d["scores"].float()[:, None], d["labels"].float()[:, None]), 1)
            for d in detections
        ]
    ).cpu()
    rows = packed.split([d["scores"].shape[0] for d in detections])
    return [{"boxes": r[:, :4], "scores": r[:, 4], "labels": r[:, 5].long()} for r in rows]
