"""R-CNN (Girshick et al., 2014): crop each proposal out of the image, warp it to a fixed size,
run the backbone on every crop, then classify and refine the proposal from the crop's features.

The opposite of Fast R-CNN, which runs the backbone once per image and pools each proposal from
the shared feature map: here the backbone runs once per proposal, which is why R-CNN is so slow
(and why it is here: to measure exactly that). The crops of a batch are one tensor; the backbone
sees them in chunks of ``chunk_size`` (no Python loop over crops).

Shapes: N images, R RoIs (crops), S crop size, D pooled feature size (the channels of
``feature_name``), C object classes.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from detkit.detectors.base import Detector, backbone_output, merge_losses, with_backbone_normalization
from detkit.heads.base import RoIHead
from detkit.ops.roi import rois_from_boxes, warp_crops
from detkit.proposals.precomputed import PrecomputedProposals
from detkit.structures import Detections, Target
from detkit.utils.stages import stage


class RCNN(Detector):
    """``head`` is a factory (``_partial_: true`` in the config) called with ``in_channels`` (the
    channels of the backbone output ``feature_name``) and ``num_classes``; it follows
    ``detkit.heads.base.RoIHead``, with the crops' features as a function of the RoIs.

    ``crop_size``: warped crop side S in pixels (the paper: 227; 224 suits the ImageNet
    backbones). ``context_padding``: warped pixels of image context around each box (the paper:
    16). ``chunk_size``: crops per backbone call at test time, bounding memory.
    ``proposal_generator``: where proposals come from (default: ``PrecomputedProposals()``,
    i.e. ``target["proposals"]``).
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: Callable[..., nn.Module],
        num_classes: int,
        proposal_generator: nn.Module | None = None,
        feature_name: str = "c5",
        crop_size: int = 224,
        context_padding: float = 16.0,
        chunk_size: int = 256,
        crop_sampling_ratio: int = 2,
        size_divisor: int = 1,
        **detector_kwargs,
    ) -> None:
        super().__init__(size_divisor=size_divisor, **with_backbone_normalization(backbone, detector_kwargs))
        info = backbone_output(backbone, feature_name)
        if crop_size < 2 * context_padding + 1:
            raise ValueError(
                f"crop_size {crop_size} leaves no room for context_padding {context_padding} on each side"
            )
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.backbone = backbone
        self.feature_name = feature_name
        self.head: RoIHead = head(in_channels=info.channels, num_classes=num_classes)
        self.proposal_generator = (
            proposal_generator if proposal_generator is not None else PrecomputedProposals()
        )
        self.num_classes = num_classes
        self.crop_size = int(crop_size)
        self.context_padding = float(context_padding)
        self.chunk_size = int(chunk_size)
        self.crop_sampling_ratio = int(crop_sampling_ratio)

    def crops(self, batch: Tensor, rois: Tensor) -> Tensor:
        """``rois: Tensor[R, 5]`` (image index, xyxy input pixels) → ``Tensor[R, 3, S, S]`` warped crops
        of the normalised ``batch: Tensor[N, 3, H, W]``."""
        crops = warp_crops(
            batch,
            rois,
            output_size=self.crop_size,
            context_padding=self.context_padding,
            sampling_ratio=self.crop_sampling_ratio,
        )
        if self.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        return crops

    def crop_features(self, batch: Tensor, rois: Tensor) -> Tensor:
        """Backbone features of every RoI's crop, globally average-pooled: ``Tensor[R, D]``."""
        features = self.backbone(self.crops(batch, rois))[self.feature_name]
        return features.mean(dim=(2, 3))

    def chunked_crop_features(self, batch: Tensor, rois: Tensor) -> Tensor:
        """``crop_features`` over ``chunk_size`` crops at a time (test time, where R is thousands)."""
        if rois.shape[0] <= self.chunk_size:
            return self.crop_features(batch, rois)
        return torch.cat([self.crop_features(batch, chunk) for chunk in rois.split(self.chunk_size)])

    def loss(self, batch: Tensor, image_sizes: Tensor, targets: list[Target]) -> dict[str, Tensor]:
        with stage("proposals"):
            proposals, proposal_losses = self.proposal_generator(None, image_sizes, targets)
        with stage("head"):
            head_losses = self.head.loss(partial(self.crop_features, batch), proposals, image_sizes, targets)
        return merge_losses(proposal_losses, head_losses)

    def predict(self, batch: Tensor, image_sizes: Tensor, targets: list[Target] | None) -> list[Detections]:
        proposals, _ = self.proposal_generator(None, image_sizes, targets)
        return self.head.predict(partial(self.chunked_crop_features, batch), proposals, image_sizes)

    @torch.no_grad()
    def classifier_features(
        self, images: Tensor | list[Tensor], targets: list[Target]
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """What the head's classifier sees, for fitting its SVMs (``tools/fit_rcnn_svms.py``).

        Per image: ``(proposals: Tensor[P, 4] xyxy, proposal_features: Tensor[P, D],
        gt_features: Tensor[G, D])``, with the proposals the detector would score in this mode
        (call ``eval()`` first: test-time proposal cap, no dropout) and the ground truth of
        ``targets[i]["boxes"]``.
        """
        batch, image_sizes = self.preprocess(images)
        proposals, _ = self.proposal_generator(None, image_sizes, targets)
        boxes = [torch.cat((p, t["boxes"].to(p))) for p, t in zip(proposals, targets, strict=True)]
        rois, _ = rois_from_boxes([b.float() for b in boxes])
        features = self.head.hidden(self.chunked_crop_features(batch, rois))
        return [
            (p, f[: p.shape[0]], f[p.shape[0] :])
            for p, f in zip(proposals, features.split([b.shape[0] for b in boxes]), strict=True)
        ]
