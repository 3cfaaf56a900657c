"""What every head that scores proposals has in common (Fast and Faster R-CNN, SPP-net, R-FCN,
R-CNN): how training RoIs are assigned to the ground truth (matcher, balanced sampler, box coder)
and the whole of test time, that is scoring and refining every proposal and then the batched
postprocessing, on a list of proposals (``predict``) or on proposals padded to one tensor
(``predict_padded``, the exported graphs' fixed shapes).

A head says only how it turns RoIs into class scores and box deltas (``scores_and_deltas``) and
what its training loss is. ``features`` is whatever its detector hands over: a feature map, a dict
of pyramid levels, or R-CNN's crop feature extractor.

Shapes: N images, P proposals per image, R RoIs, C object classes (+1 background).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detkit.assign.matcher import Matcher
from detkit.assign.sampler import BalancedSampler
from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.heads.base import RoIFeatures
from detkit.heads.roi_outputs import empty_detections, padded_roi_detections, roi_detections, sample_rois
from detkit.ops.nms import PaddedDetections
from detkit.ops.roi import padded_rois, rois_from_boxes
from detkit.structures import Detections, Target
from detkit.utils.stages import stage


class RoIHeadBase(nn.Module):
    """Training RoIs: a proposal is foreground with IoU ≥ ``fg_iou_threshold`` with a ground-truth
    box, background with its best IoU in ``bg_iou_range``; ``sample_size`` of them are kept (per
    image or over the batch, as the head's loss asks), at most ``positive_fraction`` foreground.
    Test time: per image the ``pre_nms_topk`` best (RoI, class) pairs above ``score_threshold`` go
    to class-wise NMS at ``nms_threshold``, ``max_detections`` are kept."""

    def __init__(
        self,
        *,
        num_classes: int,
        fg_iou_threshold: float,
        bg_iou_range: Sequence[float],
        sample_size: int,
        positive_fraction: float,
        add_gt_as_proposals: bool,
        box_weights: Sequence[float],
        box_loss_beta: float,
        score_threshold: float,
        nms_threshold: float,
        max_detections: int,
        pre_nms_topk: int,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.matcher = Matcher(fg_iou_threshold, tuple(bg_iou_range), allow_low_quality=False)
        self.sampler = BalancedSampler(sample_size, positive_fraction)
        self.coder = DeltaXYWHCoder(box_weights)
        self.add_gt_as_proposals = add_gt_as_proposals
        self.box_loss_beta = box_loss_beta
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_detections = max_detections
        # Per image, the best (RoI, class) pairs that go to NMS: bounds its cost (it grows with
        # the square of the candidates) when many RoIs clear score_threshold.
        self.pre_nms_topk = pre_nms_topk

    def scores_and_deltas(self, features: RoIFeatures, rois: Tensor) -> tuple[Tensor, Tensor]:
        """``rois: Tensor[R, 5]`` (image index, xyxy) → object-class scores ``Tensor[R, C]`` (no
        background column) and class-specific ``box_deltas: Tensor[R, C, 4]``."""
        raise NotImplementedError

    def training_rois(
        self, proposals: list[Tensor], targets: list[Target], *, sampler=None, per_image: bool = True
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """``detkit.heads.roi_outputs.sample_rois`` with this head's matcher, coder and (unless
        ``sampler`` replaces it) sampler: ``rois``, ``class_targets``, ``box_targets``,
        ``is_positive`` and each RoI's best IoU."""
        with stage("assign"):
            return sample_rois(
                proposals, targets, matcher=self.matcher, sampler=self.sampler if sampler is None else sampler,
                coder=self.coder, add_gt_as_proposals=self.add_gt_as_proposals, per_image=per_image,
            )  # fmt: skip

    def _selection(self) -> dict:
        return {
            "coder": self.coder,
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "pre_nms_topk": self.pre_nms_topk,
        }

    @torch.no_grad()
    def predict(self, features: RoIFeatures, proposals: list[Tensor], image_sizes: Tensor) -> list[Detections]:
        """Score and refine every proposal (``proposals[i]: Tensor[P_i, 4]`` xyxy), then the
        batched postprocessing."""
        if sum(p.shape[0] for p in proposals) == 0:
            return empty_detections(len(proposals), image_sizes.device)
        # Proposals stay float32 under autocast: bf16 would round them to 2 px steps from 256 px.
        rois, roi_image = rois_from_boxes([p.float() for p in proposals])
        scores, box_deltas = self.scores_and_deltas(features, rois)
        return roi_detections(
            scores, box_deltas, rois[:, 1:], roi_image, image_sizes, max_detections=self.max_detections,
            **self._selection(),
        )  # fmt: skip

    @torch.no_grad()
    def _scores_of_real_rois(self, features: RoIFeatures, rois: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """``scores_and_deltas`` of the rows of ``rois: Tensor[R, 5]`` where ``valid: Tensor[R]``,
        put back in their rows (zeros in the padding, which the selection never reads). The
        exported graph's runtimes then spend the per-RoI work on real proposals only: Faster
        R-CNN pads to its post-NMS top-k (1000 at test time) of which NMS often keeps a third,
        and the fully connected box head is most of its work. ONNX only: the row count depends
        on values, which ONNX runtimes handle and a torch.export program would have to guard."""
        index = valid.nonzero()[:, 0]
        scores, box_deltas = self.scores_and_deltas(features, rois[index])
        every_score = scores.new_zeros((rois.shape[0], *scores.shape[1:])).index_put((index,), scores)
        every_delta = box_deltas.new_zeros((rois.shape[0], *box_deltas.shape[1:])).index_put((index,), box_deltas)
        return every_score, every_delta

    def predict_padded(
        self, features: RoIFeatures, proposals: Tensor, valid: Tensor, image_sizes: Tensor, max_detections: int
    ) -> PaddedDetections:
        """``predict`` on ``proposals: Tensor[N, P, 4] xyxy`` padded per image (``valid: Tensor[N,
        P]`` marks the real ones), with a fixed-shape result of ``max_detections`` per image."""
        # float32 RoIs, as predict's.
        rois = padded_rois(proposals.float())
        if torch.onnx.is_in_onnx_export():
            scores, box_deltas = self._scores_of_real_rois(features, rois, valid.reshape(-1))
        else:
            scores, box_deltas = self.scores_and_deltas(features, rois)
        return padded_roi_detections(
            scores, box_deltas, proposals, valid, image_sizes, max_detections=max_detections, **self._selection()
        )
