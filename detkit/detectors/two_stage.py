"""Two-stage detectors: a proposal source, then the Fast R-CNN RoI head on one shared feature map.

Fast R-CNN and Faster R-CNN are the same class with a different ``proposal_generator``:
precomputed (selective-search) proposals or a region proposal network.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from detkit.detectors.base import (
    Detector,
    build_neck,
    merge_losses,
    one_map_output,
    read_one_map,
    with_backbone_normalization,
)
from detkit.heads.base import RoIHead
from detkit.structures import Detections, Target
from detkit.utils.stages import stage


class ProposalsThenRoIs(Detector):
    """What every two-stage detector does with its parts: features, proposals from them, then the
    RoI head on the same features. A subclass says what its features are (one map, or a pyramid)."""

    proposal_generator: nn.Module
    roi_head: RoIHead

    def features(self, batch: Tensor) -> Tensor | dict[str, Tensor]:
        raise NotImplementedError

    def loss(self, batch: Tensor, image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        features = self.features(batch)
        with stage("proposals"):
            proposals, proposal_losses = self.proposal_generator(features, image_sizes, targets)
        with stage("head"):
            head_losses = self.roi_head.loss(features, proposals, image_sizes, targets)
        return merge_losses(proposal_losses, head_losses)

    def predict(self, batch: Tensor, image_sizes: Tensor, targets: list[Target] | None) -> list[Detections]:
        features = self.features(batch)
        proposals, _ = self.proposal_generator(features, image_sizes, targets)
        return self.roi_head.predict(features, proposals, image_sizes)


class TwoStageDetector(ProposalsThenRoIs):
    """``proposal_generator`` and ``roi_head`` are factories (``_partial_: true`` in the config)
    called with ``in_channels`` and ``stride`` of the map ``feature_name``; the RoI head follows
    ``detkit.heads.base.RoIHead``, with that map as its ``features``. The map is a backbone output,
    or, with a ``neck`` (a factory called with the backbone's ``feature_info``, e.g. an FPN that
    keeps only ``p3``), one of the neck's outputs."""

    def __init__(
        self,
        *,
        backbone: nn.Module,
        proposal_generator: Callable[..., nn.Module],
        roi_head: Callable[..., nn.Module],
        num_classes: int,
        feature_name: str = "c4",
        neck: Callable[..., nn.Module] | None = None,
        **detector_kwargs,
    ) -> None:
        super().__init__(**with_backbone_normalization(backbone, detector_kwargs))
        self.backbone = backbone
        self.neck = build_neck(backbone, neck)
        info = one_map_output(backbone, self.neck, feature_name)
        self.feature_name = feature_name
        self.proposal_generator = proposal_generator(in_channels=info.channels, stride=info.stride)
        self.roi_head: RoIHead = roi_head(in_channels=info.channels, stride=info.stride, num_classes=num_classes)
        self.num_classes = num_classes

    def features(self, batch: Tensor) -> Tensor:
        """The one map ``Tensor[N, C, H', W']`` the proposal generator and the RoI head read."""
        return read_one_map(self.backbone, self.neck, self.feature_name, batch)
