"""RCNNHead: RoI sampling over the batch, losses by hand, negative samples and postprocessing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from detkit.coders.delta_xywh import DeltaXYWHCoder
from detkit.heads.rcnn import RCNNHead


def _target(boxes, labels) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.long), "image_id": 0}  # fmt: skip


def _constant_extractor(dim: int):
    def extract(rois: torch.Tensor) -> torch.Tensor:
        return torch.ones(rois.shape[0], dim) * rois[:, 1:2]  # depends on the RoI, as real crops do

    return extract


def test_sample_labels_regression_targets_by_hand() -> None:
    head = RCNNHead(in_channels=4, num_classes=3, rois_per_batch=100, add_gt_as_proposals=False)
    proposals = [
        torch.tensor([[0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 5.5], [20, 20, 30, 30]], dtype=torch.float32),
        torch.tensor([[0, 0, 5, 5], [2, 2, 9, 9]], dtype=torch.float32),
    ]
    targets = [_target([[0, 0, 10, 10]], [2]), _target([], [])]
    rois, classes, box_targets, regress = head.sample(proposals, targets, torch.tensor([[32, 32], [32, 32]]))
    order = torch.argsort(rois[:, 0] * 1000 + rois[:, 1] * 10 + rois[:, 4])
    rois, classes, box_targets, regress = rois[order], classes[order], box_targets[order], regress[order]
    # Image 0: IoUs 1.0, 0.8, 0.55 (foreground, class 2) and 0 (background); image 1: background only.
    assert rois[:, 0].tolist() == [0, 0, 0, 0, 1, 1]
    by_box = {
        tuple(r[1:].tolist()): (int(c), bool(g)) for r, c, g in zip(rois, classes, regress, strict=True)
    }
    assert by_box[(0, 0, 10, 10)] == (2, True)
    assert by_box[(0, 0, 10, 8)] == (2, True)
    assert by_box[(0, 0, 10, 5.5)] == (2, False)  # IoU 0.55 < box_iou_threshold 0.6: no regression
    assert by_box[(20, 20, 30, 30)] == (0, False)
    assert by_box[(0, 0, 5, 5)] == (0, False) and by_box[(2, 2, 9, 9)] == (0, False)
    coder = DeltaXYWHCoder((10.0, 10.0, 5.0, 5.0))
    gt = torch.tensor([[0, 0, 10, 10]], dtype=torch.float32)
    for row in torch.nonzero(regress).flatten():
        assert torch.allclose(box_targets[row], coder.encode(rois[row, 1:][None], gt)[0])


def test_sampling_is_per_batch_with_the_paper_quota() -> None:
    head = RCNNHead(
        in_channels=4, num_classes=2, rois_per_batch=128, positive_fraction=0.25, add_gt_as_proposals=False
    )
    shifts = torch.linspace(0, 1, 50)[:, None]
    positives = torch.tensor([[10, 10, 50, 50]]) + shifts * torch.tensor([[1, 0, 1, 0]])
    negatives = torch.tensor([[60, 60, 80, 80]]) + torch.linspace(0, 10, 200)[:, None]
    proposals = [torch.cat((positives, negatives[:20])), negatives]
    targets = [_target([[10, 10, 50, 50]], [1]), _target([], [])]
    rois, classes, _, _ = head.sample(proposals, targets, torch.tensor([[100, 100], [100, 100]]))
    assert rois.shape[0] == 128
    assert int((classes > 0).sum()) == 32 and bool((rois[classes > 0, 0] == 0).all())
    # 96 background RoIs drawn from both images' 220 candidates, not a fixed number per image.
    assert int((classes == 0).sum()) == 96
    assert int((rois[classes == 0, 0] == 1).sum()) > 20


def test_losses_by_hand_and_negative_samples() -> None:
    head = RCNNHead(in_channels=4, num_classes=3, rois_per_batch=100, add_gt_as_proposals=True)
    for layer in (head.predictor.cls_score, head.predictor.bbox_pred):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)
    proposals = [torch.tensor([[0, 0, 10, 8], [20, 20, 30, 30]], dtype=torch.float32)]
    targets = [_target([[0, 0, 10, 10]], [3])]
    losses = head.loss(_constant_extractor(4), proposals, torch.tensor([[40, 40]]), targets)
    # Zero logits: CE = log(4) for each of the 3 RoIs (GT, the 0.8 box, the background box).
    assert torch.allclose(losses["loss_cls"], torch.tensor(math.log(4.0)))
    deltas = DeltaXYWHCoder((10.0, 10.0, 5.0, 5.0)).encode(
        torch.tensor([0, 0, 10, 8.0]), torch.tensor([0, 0, 10, 10.0])
    )
    expected_box = F.smooth_l1_loss(torch.zeros(4), deltas, reduction="sum") / 3  # the GT RoI has zero deltas
    assert torch.allclose(losses["loss_box"], expected_box)

    empty = head.loss(
        _constant_extractor(4), [torch.tensor([[0, 0, 5, 5.0]])], torch.tensor([[40, 40]]), [_target([], [])]
    )
    assert empty["loss_box"].item() == 0.0 and torch.isfinite(empty["loss_cls"]) and empty["loss_cls"] > 0
    # Nothing at all to look at (no proposals, no objects): each whole image becomes a background RoI.
    seen = []

    def recording(rois: torch.Tensor) -> torch.Tensor:
        seen.append(rois.clone())
        return torch.zeros(rois.shape[0], 4, requires_grad=True)

    nothing = head.loss(
        recording,
        [torch.zeros(0, 4), torch.zeros(0, 4)],
        torch.tensor([[40, 30], [20, 10]]),
        [_target([], []), _target([], [])],
    )
    assert torch.equal(seen[0], torch.tensor([[0, 0, 0, 30, 40], [1, 0, 0, 10, 20]], dtype=torch.float32))
    assert nothing["loss_box"].item() == 0.0
    nothing["loss_cls"].backward()
    assert head.predictor.cls_score.weight.grad is not None


def test_predict_decodes_per_class_and_suppresses_duplicates() -> None:
    head = RCNNHead(in_channels=2, num_classes=2, score_threshold=0.3, nms_threshold=0.5)
    with torch.no_grad():
        # Feature (1, 0) -> class 1, whose deltas move x by 1.0 / 10 of the width; (0, 1) -> class 2.
        head.predictor.cls_score.weight.copy_(torch.tensor([[0, 0], [8, 0], [0, 8.0]]))
        head.predictor.cls_score.bias.zero_()
        head.predictor.bbox_pred.weight.zero_()
        head.predictor.bbox_pred.bias.copy_(torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]))
    proposals = [
        torch.tensor([[0, 0, 20, 20], [1, 0, 21, 20], [40, 40, 60, 50]], dtype=torch.float32),
        torch.zeros(0, 4),
    ]
    features = {0.0: [1.0, 0.0], 1.0: [0.9, 0.0], 40.0: [0.0, 1.0]}

    def extract(rois: torch.Tensor) -> torch.Tensor:
        return torch.tensor([features[float(x)] for x in rois[:, 1]])

    detections = head.predict(extract, proposals, torch.tensor([[64, 64], [64, 64]]))
    assert len(detections) == 2 and detections[1]["boxes"].shape == (0, 4)
    first = detections[0]
    assert first["labels"].tolist() == [1, 2]  # the overlapping class-1 pair keeps one box
    score = torch.softmax(torch.tensor([0.0, 8.0, 0.0]), 0)[1]
    assert torch.allclose(first["scores"], torch.stack((score, score)))
    assert torch.allclose(first["boxes"][0], torch.tensor([2.0, 0, 22, 20]), atol=1e-5)  # 20 px wide: +2 px
    assert torch.allclose(first["boxes"][1], torch.tensor([40.0, 40, 60, 50]))
    empty = head.predict(extract, [torch.zeros(0, 4)], torch.tensor([[64, 64]]))
    assert empty[0]["boxes"].shape == (0, 4) and empty[0]["labels"].dtype == torch.long
