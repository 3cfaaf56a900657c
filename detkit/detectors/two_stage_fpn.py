"""Faster R-CNN with a feature pyramid (Lin et al., 2017, arXiv 1612.03144): backbone → FPN neck →
RPN over every level → Fast R-CNN RoI head pooling each RoI from the level its size selects.

The single-map ``detkit.detectors.two_stage.TwoStageDetector`` hands one map to its parts; here
both the proposal generator and the RoI head get the neck's whole ``dict`` of levels.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from detkit.detectors.base import with_backbone_normalization
from detkit.detectors.two_stage import ProposalsThenRoIs
from detkit.heads.base import RoIHead
from detkit.structures import FeatureInfo
from detkit.utils.stages import stage


class FPNTwoStageDetector(ProposalsThenRoIs):
    """``neck``, ``proposal_generator`` and ``roi_head`` are factories (``_partial_: true`` in the
    config). The neck is called with the backbone's ``feature_info`` and exposes its own; the
    proposal generator (``detkit.proposals.fpn_rpn.FPNRPN``) with the neck's ``feature_info`` and
    the RoI head (``detkit.heads.fpn_roi.FPNRoIHead``) with it and ``num_classes``."""

    def __init__(
        self,
        *,
        backbone: nn.Module,
        neck: Callable[..., nn.Module],
        proposal_generator: Callable[..., nn.Module],
        roi_head: Callable[..., nn.Module],
        num_classes: int,
        **detector_kwargs,
    ) -> None:
        super().__init__(**with_backbone_normalization(backbone, detector_kwargs))
        self.backbone = backbone
        self.neck = neck(feature_info=list(backbone.feature_info))
        feature_info: list[FeatureInfo] = list(self.neck.feature_info)
        self.proposal_generator = proposal_generator(feature_info=feature_info)
        self.roi_head: RoIHead = roi_head(feature_info=feature_info, num_classes=num_classes)
        self.num_classes = num_classes

    def features(self, batch: Tensor) -> dict[str, Tensor]:
        with stage("backbone"):
            levels = self.backbone(batch)
        with stage("neck"):
            return self.neck(levels)
