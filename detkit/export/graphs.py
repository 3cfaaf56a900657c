"""Detectors as exportable graphs: a fixed input size, a dynamic batch, the postprocessing inside.

A graph wraps a detector in ``eval()`` mode and computes exactly its detections, but as
fixed-shape tensors (``detkit.ops.nms.postprocess_padded``) with no Python control flow on values,
so that tracing (TorchScript, ONNX) records the decoding, NMS and the cap of every image.

Shapes: B images (dynamic), S input size (fixed), P proposals per image (dynamic), K the maximum
number of detections per image (fixed), C object classes.

Inputs:
  ``images``         float32 ``[B, 3, S, S]``: RGB in [0, 1], letterboxed as detkit's eval
                     transform does (longest side resized to S, padded right and bottom with 0).
                     The ImageNet normalisation happens inside the graph.
  ``proposals``      float32 ``[B, P, 4]`` xyxy in input pixels, best ranked first (Fast R-CNN,
                     SPP-net and R-CNN only: the detectors that score precomputed proposals).
  ``num_proposals``  int64 ``[B]``: rows ``0 .. num_proposals[b] - 1`` of image b are real, the
                     rest padding (Fast R-CNN, SPP-net and R-CNN only).
Outputs:
  ``boxes``           float32 ``[B, K, 4]`` xyxy in input pixels
  ``scores``          float32 ``[B, K]``, descending within each image
  ``labels``          int64 ``[B, K]``: 1..C (0 in padding)
  ``num_detections``  int64 ``[B]``: the first ``num_detections[b]`` rows of image b are real
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from detkit.detectors.base import Detector
from detkit.detectors.rcnn import RCNN
from detkit.detectors.single_stage import SingleStageDetector
from detkit.detectors.spp_net import SPPNet
from detkit.detectors.two_stage import TwoStageDetector
from detkit.detectors.two_stage_fpn import FPNTwoStageDetector
from detkit.ops.nms import PaddedDetections, postprocess_dense_padded
from detkit.proposals.precomputed import PrecomputedProposals
from detkit.proposals.rpn import RPN
from detkit.proposals.sliding_windows import SlidingWindows

IMAGE_INPUTS = ("images",)
PROPOSAL_INPUTS = ("images", "proposals", "num_proposals")
OUTPUTS = ("boxes", "scores", "labels", "num_detections")


class DetectionGraph(nn.Module):
    """Common part of the graphs: the detector (``eval()`` mode), S and K."""

    input_names: tuple[str, ...] = IMAGE_INPUTS

    def __init__(self, detector: Detector, *, input_size: int, max_detections: int) -> None:
        super().__init__()
        if int(input_size) < 1 or int(max_detections) < 1:
            raise ValueError(f"input_size and max_detections must be positive, got {input_size}, {max_detections}")
        self.detector = detector.eval()
        self.input_size = int(input_size)
        self.max_detections = int(max_detections)

    def prepare(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The normalised batch and ``image_sizes: Tensor[B, 2]``: every image is S × S (the
        letterbox padding counts as image, as for a batched tensor in the PyTorch path)."""
        size = images.new_tensor([self.input_size, self.input_size], dtype=torch.long)
        return self.detector.normalize(images), size[None, :].expand(images.shape[0], 2)


class DenseGraph(DetectionGraph):
    """SSD, YOLOv1, YOLOv3: the head's dense predictions, then top-k → threshold → NMS → cap."""

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        batch, image_sizes = self.prepare(images)
        head = self.detector.head
        boxes, scores = head.dense_predictions(self.detector.features(batch), image_sizes)
        return tuple(
            postprocess_dense_padded(
                boxes,
                scores,
                score_threshold=head.score_threshold,
                pre_nms_topk=head.pre_nms_topk,
                iou_threshold=head.nms_threshold,
                max_detections=self.max_detections,
            )
        )


class RPNGraph(DetectionGraph):
    """Faster R-CNN (also with FPN): RPN proposals (padded to the post-NMS top-k), then the RoI head."""

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        batch, image_sizes = self.prepare(images)
        detector = self.detector
        # One map (after the neck, where there is one), or the pyramid's levels: for the RPN and
        # the RoI head alike.
        features = detector.features(batch)
        proposals, valid = detector.proposal_generator.padded_proposals(features, image_sizes)
        return tuple(detector.roi_head.predict_padded(features, proposals, valid, image_sizes, self.max_detections))


class ProposalGraph(DetectionGraph):
    """Fast R-CNN, SPP-net and R-CNN: proposals are a second input (padded, with a count per image)."""

    input_names = PROPOSAL_INPUTS

    def forward(self, images: Tensor, proposals: Tensor, num_proposals: Tensor) -> tuple[Tensor, ...]:
        batch, image_sizes = self.prepare(images)
        detector = self.detector
        boxes, valid = detector.proposal_generator.padded(proposals, num_proposals, image_sizes)
        detections: PaddedDetections
        if isinstance(detector, RCNN):
            # Every proposal's crop goes through the backbone in one call (no chunks: their
            # number is only known at run time).
            extract = partial(detector.crop_features, batch)
            detections = detector.head.predict_padded(extract, boxes, valid, image_sizes, self.max_detections)
        else:
            features = detector.features(batch)
            head = detector.head if isinstance(detector, SPPNet) else detector.roi_head
            detections = head.predict_padded(features, boxes, valid, image_sizes, self.max_detections)
        return tuple(detections)


def default_max_detections(model: nn.Module) -> int:
    """The detector's own cap on detections per image (its head's ``max_detections``)."""
    head = getattr(model, "roi_head", None) or getattr(model, "head", None)
    if head is None or not hasattr(head, "max_detections"):
        raise ValueError(f"{type(model).__name__} has no head with max_detections; pass max_detections")
    return int(head.max_detections)


def detection_graph(model: nn.Module, *, input_size: int, max_detections: int | None = None) -> DetectionGraph:
    """The exportable graph of ``model`` (any detkit detector family); ``max_detections`` K
    defaults to the detector's own cap. Puts ``model`` in ``eval()`` mode."""
    graph_type: type[DetectionGraph] | None = None
    if isinstance(model, SingleStageDetector):
        if not hasattr(model.head, "dense_predictions"):
            raise ValueError(f"{type(model.head).__name__} has no dense_predictions(); it cannot be exported")
        graph_type = DenseGraph
    elif isinstance(model, TwoStageDetector | FPNTwoStageDetector) and isinstance(model.proposal_generator, RPN):
        graph_type = RPNGraph
    elif isinstance(model, TwoStageDetector | RCNN | SPPNet) and isinstance(
        model.proposal_generator, PrecomputedProposals
    ):
        graph_type = ProposalGraph
    if isinstance(model, RCNN) and isinstance(model.proposal_generator, SlidingWindows):
        raise ValueError(
            "cannot export the sliding-window detector (R-CNN over detkit.proposals.sliding_windows): it is a "
            "teaching baseline that scores every window of its grid with the backbone; run it in PyTorch"
        )
    if graph_type is not None:
        limit = default_max_detections(model) if max_detections is None else max_detections
        return graph_type(model, input_size=input_size, max_detections=limit)
    raise ValueError(
        f"cannot export a {type(model).__name__}: detkit.export knows single-stage detectors (SSD, YOLOv1-v4, "
        "RetinaNet, the localiser), two-stage detectors with an RPN (also over FPN) or precomputed proposals, "
        "SPP-net and R-CNN"
    )
