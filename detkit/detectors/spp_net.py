"""SPP-net (He et al., 2014): selective-search proposals, one backbone pass per image, and a
spatial pyramid pooled from the last conv map for each proposal (``detkit.heads.spp.SPPHead``).

Between R-CNN (the backbone once per proposal) and Fast R-CNN (the same single pass, RoI pooling
and end-to-end training): the paper fine-tunes only the layers after the pyramid, the conv layers
keeping their ImageNet weights (``finetune_fc_only``), and scores with per-class SVMs
(``detkit fit-svms``).

Shapes: N images, P proposals per image, R RoIs, F the head's FC width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from detkit.backbones.base import freeze_batchnorm
from detkit.detectors.base import (
    Detector,
    build_neck,
    merge_losses,
    one_map_output,
    read_one_map,
    with_backbone_normalization,
)
from detkit.heads.base import RoIHead
from detkit.ops.roi import rois_from_boxes
from detkit.proposals.precomputed import PrecomputedProposals
from detkit.structures import Detections, Target
from detkit.utils.stages import stage


class SPPNet(Detector):
    """``head`` is a factory (``_partial_: true`` in the config) called with ``in_channels`` and
    ``stride`` of the map ``feature_name`` and ``num_classes``; it follows
    ``detkit.heads.base.RoIHead`` with that map as its ``features``. The map is a backbone output,
    or one of an optional ``neck``'s (a factory called with the backbone's ``feature_info``).
    ``proposal_generator``: default ``PrecomputedProposals()`` (``target["proposals"]``).
    ``finetune_fc_only``: freeze every backbone parameter (and its BatchNorm statistics), so that
    training changes only the layers after the pyramid, as the paper's fine-tuning does.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: Callable[..., nn.Module],
        num_classes: int,
        proposal_generator: nn.Module | None = None,
        feature_name: str = "c5",
        neck: Callable[..., nn.Module] | None = None,
        finetune_fc_only: bool = False,
        **detector_kwargs,
    ) -> None:
        super().__init__(**with_backbone_normalization(backbone, detector_kwargs))
        self.backbone = backbone
        self.neck = build_neck(backbone, neck)
        info = one_map_output(backbone, self.neck, feature_name)
        self.feature_name = feature_name
        self.head: RoIHead = head(in_channels=info.channels, stride=info.stride, num_classes=num_classes)
        self.proposal_generator = proposal_generator if proposal_generator is not None else PrecomputedProposals()
        self.num_classes = num_classes
        self.finetune_fc_only = bool(finetune_fc_only)
        if self.finetune_fc_only:
            backbone.requires_grad_(False)
            freeze_batchnorm(backbone)

    def features(self, batch: Tensor) -> Tensor:
        """The conv map ``Tensor[N, C, H', W']`` of the normalised ``batch``: one pass per image."""
        return read_one_map(self.backbone, self.neck, self.feature_name, batch)

    def loss(self, batch: Tensor, image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        with stage("proposals"):
            proposals, proposal_losses = self.proposal_generator(None, image_sizes, targets)
        features = self.features(batch)
        with stage("head"):
            head_losses = self.head.loss(features, proposals, image_sizes, targets)
        return merge_losses(proposal_losses, head_losses)

    def predict(self, batch: Tensor, image_sizes: Tensor, targets: list[Target] | None) -> list[Detections]:
        proposals, _ = self.proposal_generator(None, image_sizes, targets)
        return self.head.predict(self.features(batch), proposals, image_sizes)

    @torch.no_grad()
    def classifier_features(
        self, images: Tensor | list[Tensor], targets: list[Target]
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """What the head's classifier sees (fc7), for fitting its SVMs (``detkit fit-svms``): per
        image ``(proposals: Tensor[P, 4] xyxy, proposal_features: Tensor[P, F], gt_features:
        Tensor[G, F])``, the proposals those of the current mode (call ``eval()`` first)."""
        batch, image_sizes = self.preprocess(images)
        proposals, _ = self.proposal_generator(None, image_sizes, targets)
        boxes = [torch.cat((p, t["boxes"].to(p))) for p, t in zip(proposals, targets, strict=True)]
        rois, _ = rois_from_boxes([b.float() for b in boxes])
        features = self.head.fc_features(self.features(batch), rois)
        return [
            (p, f[: p.shape[0]], f[p.shape[0] :])
            for p, f in zip(proposals, features.split([b.shape[0] for b in boxes]), strict=True)
        ]
