"""The contracts of detection heads: what a detector calls, one signature per family.

A head owns its losses and its postprocessing: ``loss(...)`` in training returns the standard
loss keys (``detkit.losses.LOSS_KEYS``), ``predict(...)`` returns one ``Detections`` per image,
boxes ``xyxy`` in the input image's pixels. The arguments come in the detector's own order:
what the head looks at, then the image sizes, then (training) the targets. Export
(``detkit.export``) needs fixed-shape outputs instead of ragged lists: ``dense_predictions`` and
``predict_padded``.

- :class:`DenseHead`: single-stage heads (SSD, RetinaNet, YOLOv1, YOLOv2, YOLOv3 / YOLOv4, the
  single-object localiser), called by ``detkit.detectors.single_stage.SingleStageDetector`` with
  the backbone's (or neck's) maps.
- :class:`RoIHead`: heads that score proposals (Fast R-CNN and Faster R-CNN, with and without FPN;
  R-FCN; SPP-net; R-CNN), called by ``detkit.detectors.two_stage.TwoStageDetector`` (and its FPN
  variant), ``detkit.detectors.spp_net.SPPNet`` and ``detkit.detectors.rcnn.RCNN`` with the
  proposals and where the RoIs' features come from. What they share (RoI sampling, scoring,
  postprocessing) is ``detkit.heads.roi_head_base.RoIHeadBase``.

Protocols, not base classes: a head is any ``nn.Module`` with these methods
(``tests/heads/test_contract.py`` checks that every head of detkit has them with these names).

Shapes: N images, P_i proposals of image i, R RoIs, D feature size per RoI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from torch import Tensor

from detkit.ops.nms import PaddedDetections
from detkit.structures import Detections, Target

# Where a RoI head's features come from: a feature map ``Tensor[N, C, H', W']`` that the head pools
# each RoI from (Fast R-CNN), or a function ``rois: Tensor[R, 5] (image index, xyxy) → Tensor[R, D]``
# (R-CNN, whose detector crops each RoI out of the image and runs the backbone on it).
RoIFeatures = Tensor | Callable[[Tensor], Tensor]


@runtime_checkable
class DenseHead(Protocol):
    """A head that predicts at every position of its input maps."""

    def loss(self, features: dict[str, Tensor], image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        """``features``: name → ``Tensor[N, C, H, W]``; ``image_sizes: Tensor[N, 2]`` (height,
        width of each image before padding) → the head's losses."""
        ...

    def predict(self, features: dict[str, Tensor], image_sizes: Tensor) -> list[Detections]:
        """The N images' detections."""
        ...

    def dense_predictions(self, features: dict[str, Tensor], image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """What ``predict``'s postprocessing selects from: boxes ``Tensor[N, A, 4] xyxy`` (clipped
        to each image) and per-class scores ``Tensor[N, A, C]``."""
        ...


@runtime_checkable
class RoIHead(Protocol):
    """A head that classifies and refines given proposals."""

    def loss(
        self, features: RoIFeatures, proposals: list[Tensor], image_sizes: Tensor, targets: list[Target]
    ) -> dict[str, Tensor]:
        """``proposals``: per image ``Tensor[P_i, 4] xyxy`` input pixels; the head samples the RoIs
        it learns from among them (and the ground truth)."""
        ...

    def predict(self, features: RoIFeatures, proposals: list[Tensor], image_sizes: Tensor) -> list[Detections]:
        """Every proposal scored and refined, then postprocessed."""
        ...

    def predict_padded(
        self, features: RoIFeatures, proposals: Tensor, valid: Tensor, image_sizes: Tensor, max_detections: int
    ) -> PaddedDetections:
        """``predict`` on ``proposals: Tensor[N, P, 4] xyxy`` padded per image (``valid: Tensor[N, P]``
        bool marks the real ones), ``max_detections`` per image in a fixed-shape result."""
        ...
