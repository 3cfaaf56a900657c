"""Precomputed proposals as a proposal generator: what turns the two-stage detector into Fast R-CNN.

Same interface as the RPN (``generator(features, image_sizes, targets) -> (proposals, losses)``),
but the boxes come from ``target["proposals"]`` (selective search or Edge Boxes, added to the targets by
``detkit.data.proposals.with_proposals.WithProposals``) and there is nothing to learn, so the losses
are empty. R-CNN uses it too, without features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from detkit.ops.boxes import clip_boxes, clip_boxes_per_image
from detkit.ops.image_sizes import host_image_sizes
from detkit.priors.coverage import BlankBatch
from detkit.structures import Target


class PrecomputedProposals(nn.Module):
    """Reads, clips and caps the proposals carried by the targets.

    ``max_proposals_train`` / ``max_proposals_test``: the first (best ranked) proposals kept per
    image in ``train()`` / ``eval()`` mode. ``min_size``: proposals narrower or lower than this
    many input pixels after clipping are dropped. ``in_channels`` and ``stride`` are accepted
    for the two-stage detector's factory interface and not used.
    """

    def __init__(
        self,
        *,
        in_channels: int | None = None,
        stride: int | None = None,
        max_proposals_train: int = 2000,
        max_proposals_test: int = 2000,
        min_size: float = 1.0,
    ) -> None:
        super().__init__()
        if max_proposals_train < 1 or max_proposals_test < 1:
            raise ValueError("max_proposals_train and max_proposals_test must be positive")
        self.max_proposals = {True: int(max_proposals_train), False: int(max_proposals_test)}
        self.min_size = float(min_size)

    def coverage_priors(self, detector: nn.Module, blank_batch: BlankBatch) -> str:
        """Nothing for the prior coverage check to measure: the proposals come from outside."""
        return (
            f"{type(detector).__name__} has no anchors or default boxes: its proposals are precomputed "
            "(selective search or Edge Boxes)"
        )

    def forward(
        self, features: Tensor | None, image_sizes: Tensor, targets: list[Target] | None = None
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """``image_sizes: Tensor[N, 2]`` (height, width) → per image ``Tensor[P_i, 4] xyxy`` in
        input pixels (float32, on ``image_sizes``' device), and no losses.

        Input pixels are those of the images given to the detector, which is what the dataset's
        transform produced, so the proposals need no rescaling here.
        """
        if targets is None:
            raise ValueError(
                "this detector scores precomputed proposals: call it with targets that carry "
                "'proposals' (also in eval mode), e.g. from a dataset wrapped by WithProposals "
                "(config: data.proposals.enabled=true)"
            )
        if len(targets) != image_sizes.shape[0]:
            raise ValueError(f"got {image_sizes.shape[0]} images but {len(targets)} targets")
        limit = self.max_proposals[self.training]
        out = []
        sizes = host_image_sizes(image_sizes) or image_sizes.tolist()  # the host copy: no device sync
        for target, (height, width) in zip(targets, sizes, strict=True):
            if "proposals" not in target:
                raise ValueError(
                    f"image_id {target.get('image_id', '?')}: target has no 'proposals'; wrap the dataset with "
                    "detkit.data.proposals.with_proposals.WithProposals (config: data.proposals.enabled=true)"
                )
            boxes = torch.as_tensor(target["proposals"], dtype=torch.float32, device=image_sizes.device)
            if boxes.dim() != 2 or boxes.shape[1] != 4:
                raise ValueError(
                    f"image_id {target.get('image_id', '?')}: proposals must be Tensor[P, 4] xyxy, "
                    f"got {tuple(boxes.shape)}"
                )
            boxes = clip_boxes(boxes[torch.isfinite(boxes).all(dim=1)], height, width)
            out.append(boxes[self._large_enough(boxes)][:limit])
        return out, {}

    def padded(self, proposals: Tensor, num_proposals: Tensor, image_sizes: Tensor) -> tuple[Tensor, Tensor]:
        """``forward`` for proposals given as one tensor (the exported graphs' input):
        ``proposals: Tensor[N, P, 4] xyxy`` of which the first ``num_proposals: Tensor[N]`` of each
        image are real. Returns the clipped ``boxes: Tensor[N, P, 4]`` and ``valid: Tensor[N, P]``,
        True exactly for the proposals ``forward`` would keep (same order)."""
        listed = torch.arange(proposals.shape[1], device=proposals.device)[None, :] < num_proposals[:, None]
        finite = torch.isfinite(proposals).all(dim=2)
        boxes = clip_boxes_per_image(torch.where(finite[..., None], proposals.float(), 0.0), image_sizes)
        valid = listed & finite & self._large_enough(boxes)
        # forward's [:limit] over the kept ones: a rank among the valid proposals of the image.
        return boxes, valid & (valid.long().cumsum(dim=1) <= self.max_proposals[self.training])

    def _large_enough(self, boxes: Tensor) -> Tensor:
        widths, heights = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
        return (widths >= self.min_size) & (heights >= self.min_size) & (widths > 0) & (heights > 0)


def needs_precomputed_proposals(model: nn.Module) -> bool:
    """Whether ``model`` scores proposals it reads from the targets (Fast R-CNN, R-CNN), so that a
    caller without a proposal-carrying dataset (e.g. prediction on image files) must search them
    itself: ``detkit.data.proposals.methods.search_proposals`` (the method and settings of the
    model's config) on the stored image, scaled like the image, passed as ``targets=[{"proposals": ...}]``."""
    return any(isinstance(module, PrecomputedProposals) for module in model.modules())
