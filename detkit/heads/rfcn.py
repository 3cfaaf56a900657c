"""The R-FCN head (Dai et al., 2016): region-based and fully convolutional.

All the learned computation runs once per image on the whole map: an optional 1 × 1 convolution
reduces the backbone's channels (the paper: 2048 → 1024, with ReLU), then two 1 × 1 convolutions
make k² · (C+1) position-sensitive score maps and k² · 4 class-agnostic box maps. Per RoI there
is only position-sensitive pooling (``detkit.ops.ps_roi``) and voting by averaging, which gives
the (C+1) class logits and 4 box deltas. Training samples RoIs as Fast R-CNN does, or, with
``ohem``, scores every proposal and learns from the ``ohem_batch_size`` highest-loss ones per image
(online hard example mining: cheap here because a RoI costs no more than pooling).

Shapes: N images, P proposals per image, R RoIs, k × k bins, C object classes (+1 background).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detkit.heads.roi_head_base import RoIHeadBase
from detkit.heads.roi_outputs import roi_losses, softmax_scores
from detkit.ops.ps_roi import PSRoiKind, ps_pool_rois, vote
from detkit.structures import Target


class AllMatched:
    """A sampler that keeps every matched RoI (label 1 or 0): OHEM ranks them all by their loss.
    ``labels: Tensor[N, P]`` in {-1, 0, 1} → ``(positive, negative)`` bool masks."""

    def __call__(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        return labels == 1, labels == 0


def per_roi_losses(
    class_logits: Tensor, box_deltas: Tensor, class_targets: Tensor, box_targets: Tensor, *, box_loss_beta: float
) -> Tensor:
    """Each RoI's own loss ``Tensor[R]``: cross-entropy plus, for foreground RoIs, the smooth-L1
    summed over its 4 deltas (``box_deltas: Tensor[R, 4]``, class-agnostic). What OHEM ranks by."""
    loss = F.cross_entropy(class_logits.float(), class_targets, reduction="none")
    box = F.smooth_l1_loss(box_deltas.float(), box_targets.float(), beta=box_loss_beta, reduction="none").sum(dim=1)
    return loss + torch.where(class_targets > 0, box, torch.zeros_like(box))


def hardest_per_image(loss: Tensor, image_index: Tensor, per_image: int) -> Tensor:
    """Indices of the ``per_image`` largest entries of ``loss: Tensor[R]`` within each image
    (``image_index: Tensor[R]``), all of them where an image has fewer; sorted by image."""
    order = loss.argsort(descending=True)
    order = order[image_index[order].argsort(stable=True)]  # image-major, hardest first in each image
    counts = torch.bincount(image_index, minlength=int(image_index.max()) + 1 if image_index.numel() else 0)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.numel(), device=loss.device) - first[image_index[order]]
    return order[rank < per_image]


class RFCNHead(RoIHeadBase):
    """``grid_size`` k (the paper: 7); ``reduced_channels``: output channels of the 1 × 1
    dimension-reduction convolution (None: none, the maps read the backbone directly);
    ``pooler``: ``ps_roi_align`` or ``ps_roi_pool``. Without ``ohem``, ``batch_size_per_image``
    RoIs per image are sampled, ``positive_fraction`` of them foreground at most; with it, every
    proposal (plus the ground truth) is scored and the ``ohem_batch_size`` highest-loss ones of each
    image are learned from (the paper: 128 of 300)."""

    def __init__(
        self,
        *,
        in_channels: int,
        stride: int,
        num_classes: int,
        grid_size: int = 7,
        reduced_channels: int | None = 1024,
        pooler: PSRoiKind = "ps_roi_align",
        sampling_ratio: int = 2,
        fg_iou_threshold: float = 0.5,
        bg_iou_range: Sequence[float] = (0.0, 0.5),
        batch_size_per_image: int = 128,
        positive_fraction: float = 0.25,
        add_gt_as_proposals: bool = True,
        ohem: bool = False,
        ohem_batch_size: int = 128,
        box_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        box_loss_beta: float = 1.0,
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        max_detections: int = 100,
        pre_nms_topk: int = 1000,
    ) -> None:
        if pooler not in ("ps_roi_align", "ps_roi_pool"):
            raise ValueError(f"unknown position-sensitive pooling {pooler!r}; use 'ps_roi_align' or 'ps_roi_pool'")
        if grid_size < 1 or ohem_batch_size < 1:
            raise ValueError(f"grid_size and ohem_batch_size must be positive, got {grid_size}, {ohem_batch_size}")
        super().__init__(
            num_classes=num_classes, fg_iou_threshold=fg_iou_threshold, bg_iou_range=bg_iou_range,
            sample_size=batch_size_per_image, positive_fraction=positive_fraction,
            add_gt_as_proposals=add_gt_as_proposals, box_weights=box_weights, box_loss_beta=box_loss_beta,
            score_threshold=score_threshold, nms_threshold=nms_threshold, max_detections=max_detections,
            pre_nms_topk=pre_nms_topk,
        )  # fmt: skip
        self.grid_size = grid_size
        self.pooler = pooler
        self.sampling_ratio = sampling_ratio
        self.spatial_scale = 1.0 / stride
        if reduced_channels:
            self.reduce: nn.Module = nn.Sequential(nn.Conv2d(in_channels, reduced_channels, 1), nn.ReLU(inplace=True))
            in_channels = reduced_channels
        else:
            self.reduce = nn.Identity()
        bins = grid_size * grid_size
        self.class_maps = nn.Conv2d(in_channels, bins * (num_classes + 1), 1)
        self.box_maps = nn.Conv2d(in_channels, bins * 4, 1)
        # As Fast R-CNN's predictor: near-uniform class scores and boxes equal to their RoIs at first.
        for layer, std in ((self.class_maps, 0.01), (self.box_maps, 0.001)):
            nn.init.normal_(layer.weight, std=std)
            nn.init.zeros_(layer.bias)
        self.ohem = ohem
        self.ohem_batch_size = ohem_batch_size

    def maps(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """``features: Tensor[N, C_in, H, W]`` → score maps ``Tensor[N, k²·(C+1), H, W]`` and box
        maps ``Tensor[N, k²·4, H, W]``: the whole per-image computation."""
        hidden = self.reduce(features)
        return self.class_maps(hidden), self.box_maps(hidden)

    def _outputs(self, features: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        """``class_logits: Tensor[R, C+1]`` and class-agnostic ``box_deltas: Tensor[R, 4]``."""
        return self._pool(*self.maps(features), rois)

    def _pool(self, class_maps: Tensor, box_maps: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        pool = {"output_size": self.grid_size, "spatial_scale": self.spatial_scale, "kind": self.pooler,
                "sampling_ratio": self.sampling_ratio}  # fmt: skip
        return vote(ps_pool_rois(class_maps, rois, **pool)), vote(ps_pool_rois(box_maps, rois, **pool))

    def scores_and_deltas(self, features: Tensor, rois: Tensor) -> tuple[Tensor, Tensor]:
        class_logits, box_deltas = self._outputs(features, rois)
        return softmax_scores(class_logits), self._per_class(box_deltas)

    def _per_class(self, box_deltas: Tensor) -> Tensor:
        # The shared decoding and loss take class-specific deltas: every class gets the same box.
        return box_deltas[:, None, :].expand(-1, self.num_classes, -1)

    def loss(
        self, features: Tensor, proposals: list[Tensor], image_sizes: Tensor, targets: list[Target]
    ) -> dict[str, Tensor]:
        """``loss_cls`` (cross-entropy) and ``loss_box`` (smooth-L1 of the foreground RoIs' deltas),
        summed over the RoIs learned from and divided by their number. ``image_sizes`` is part of
        the RoI-head contract (``detkit.heads.base.RoIHead``) and not needed here."""
        del image_sizes
        rois, class_targets, box_targets, is_positive, _ = self.training_rois(
            proposals, targets, sampler=AllMatched() if self.ohem else None
        )
        if not self.ohem:
            class_logits, box_deltas = self._outputs(features, rois)
        else:
            class_maps, box_maps = self.maps(features)
            with torch.no_grad():  # every RoI scored, to rank them
                class_logits, box_deltas = self._pool(class_maps, box_maps, rois)
                loss = per_roi_losses(
                    class_logits, box_deltas, class_targets, box_targets, box_loss_beta=self.box_loss_beta
                )
                hard = hardest_per_image(loss, rois[:, 0].long(), self.ohem_batch_size)
                in_roi_order, to_roi_order = hard.sort()
            # Only the hard RoIs reach the loss. They are pooled a second time, with gradients, so that
            # the pooling's backward (the costliest part of the head on a CPU) runs over them alone
            # rather than over every scored RoI. Pooled in the RoIs' own order and put back in the
            # ranking's, the gradients are the same as one pass over all RoIs would give.
            class_logits, box_deltas = self._pool(class_maps, box_maps, rois[in_roi_order])
            from_roi_order = to_roi_order.argsort()
            class_logits, box_deltas = class_logits[from_roi_order], box_deltas[from_roi_order]
            class_targets, box_targets, is_positive = class_targets[hard], box_targets[hard], is_positive[hard]
        return roi_losses(
            class_logits, self._per_class(box_deltas), class_targets, box_targets, is_positive,
            box_loss_beta=self.box_loss_beta,
        )
