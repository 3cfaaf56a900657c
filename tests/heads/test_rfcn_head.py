"""The R-FCN head's parts: OHEM ranks every RoI by its own loss and keeps the hardest per image;
the scores are the vote (mean) of position-sensitive pooling on the head's own maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from detkit.heads.rfcn import RFCNHead, hardest_per_image, per_roi_losses


def test_per_roi_loss_is_cross_entropy_plus_box_loss_of_foreground():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    classes = torch.tensor([0, 1])
    deltas = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.5, -2.0, 0.0, 0.0]])
    targets = torch.zeros(2, 4)
    got = per_roi_losses(logits, deltas, classes, targets, box_loss_beta=1.0)
    ce = [math_ce(logits[0], 0), math_ce(logits[1], 1)]
    # Background: no box term whatever its deltas. Foreground: 0.5·0.5² + (2 - 0.5) + 0 + 0.
    assert torch.allclose(got, torch.tensor([ce[0], ce[1] + 0.125 + 1.5]))


def math_ce(logits: torch.Tensor, label: int) -> float:
    return float(torch.logsumexp(logits, 0) - logits[label])


def test_hardest_per_image_keeps_the_top_losses_of_each_image():
    loss = torch.tensor([0.1, 0.9, 0.5, 0.3, 2.0, 0.2, 0.05])
    image = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    kept = hardest_per_image(loss, image, 2)
    assert kept.tolist() == [1, 2, 4, 5]
    assert hardest_per_image(loss, image, 10).sort().values.tolist() == list(range(7))


def test_ohem_backpropagates_only_the_hardest_rois():
    torch.manual_seed(0)
    head = RFCNHead(in_channels=8, stride=8, num_classes=3, grid_size=2, reduced_channels=None, ohem=True,
                    ohem_batch_size=4, add_gt_as_proposals=False)
    with torch.no_grad():
        for layer in (head.class_maps, head.box_maps):
            layer.weight.normal_(std=0.5)
    features = torch.randn(1, 8, 8, 8)
    proposals = [torch.tensor([[0, 0, 30, 30], [2, 2, 32, 30], [30, 30, 60, 60], [0, 32, 30, 62],
                               [10, 10, 40, 40], [33, 1, 63, 31], [5, 40, 25, 60], [40, 5, 60, 25]],
                              dtype=torch.float32)]
    target = [{"boxes": torch.tensor([[1.0, 1.0, 31.0, 31.0]]), "labels": torch.tensor([2]), "image_id": 0}]
    losses = head.loss(features, proposals, torch.tensor([[64, 64]]), target)

    # The same computation by hand: every proposal's own loss, the 4 largest averaged.
    rois = torch.cat((torch.zeros(8, 1), proposals[0]), dim=1)
    logits, deltas = head._outputs(features, rois)
    iou = box_iou(proposals[0], target[0]["boxes"])[:, 0]
    classes = torch.where(iou >= 0.5, 2, 0)
    box_targets = head.coder.encode(proposals[0], target[0]["boxes"].expand(8, 4))
    each = F.cross_entropy(logits, classes, reduction="none")
    box = F.smooth_l1_loss(deltas, box_targets, reduction="none").sum(1) * (classes > 0)
    hard = (each + box).topk(4).indices
    assert torch.allclose(losses["loss_cls"], each[hard].mean(), atol=1e-5)
    assert torch.allclose(losses["loss_box"], box[hard].sum() / 4, atol=1e-5)


def test_scores_are_the_vote_of_position_sensitive_pooling():
    torch.manual_seed(0)
    head = RFCNHead(in_channels=4, stride=1, num_classes=2, grid_size=2, reduced_channels=None, pooler="ps_roi_pool")
    features = torch.randn(1, 4, 6, 6)
    rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
    logits, deltas = head._outputs(features, rois)
    class_maps, box_maps = head.maps(features)
    # Bin (i, j) of class c reads map c·4 + i·2 + j over its 2 x 2 cells; the 4 bins are averaged.
    expected = torch.zeros(3)
    for c in range(3):
        for i in range(2):
            for j in range(2):
                expected[c] += class_maps[0, c * 4 + i * 2 + j, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean() / 4
    assert torch.allclose(logits[0], expected, atol=1e-5)
    assert deltas.shape == (1, 4)


def test_ohem_gradients_equal_one_pooling_pass_over_every_roi():
    """The head pools the hard RoIs a second time with gradients (a cheaper backward); the losses and
    every gradient are those of pooling all RoIs once with gradients and keeping the hard ones."""
    from detkit.heads.rfcn import AllMatched
    from detkit.heads.roi_outputs import roi_losses

    torch.manual_seed(0)
    head = RFCNHead(in_channels=8, stride=8, num_classes=3, grid_size=3, reduced_channels=6, ohem=True,
                    ohem_batch_size=5, add_gt_as_proposals=True)  # fmt: skip
    features = torch.randn(2, 8, 10, 10)
    corners = torch.rand(2, 30, 2) * 50
    proposals = [torch.cat((c, c + 8 + torch.rand(30, 2) * 20), dim=1) for c in corners]
    targets = [
        {"boxes": torch.tensor([[4.0, 6.0, 30.0, 40.0], [40.0, 30.0, 70.0, 62.0]]), "labels": torch.tensor([1, 3])},
        {"boxes": torch.tensor([[10.0, 10.0, 50.0, 44.0]]), "labels": torch.tensor([2])},
    ]

    def gradients(loss_fn) -> tuple[dict, list[torch.Tensor]]:
        head.zero_grad()
        leaf = features.clone().requires_grad_(True)
        losses = loss_fn(leaf)
        sum(losses.values()).backward()
        return losses, [leaf.grad, *(p.grad for p in head.parameters())]

    def one_pass(leaf):
        rois, classes, box_targets, positive, _ = head.training_rois(proposals, targets, sampler=AllMatched())
        logits, deltas = head._outputs(leaf, rois)
        each = per_roi_losses(logits.detach(), deltas.detach(), classes, box_targets, box_loss_beta=head.box_loss_beta)
        hard = hardest_per_image(each, rois[:, 0].long(), head.ohem_batch_size)
        return roi_losses(logits[hard], head._per_class(deltas[hard]), classes[hard], box_targets[hard],
                          positive[hard], box_loss_beta=head.box_loss_beta)  # fmt: skip

    losses, grads = gradients(lambda leaf: head.loss(leaf, proposals, torch.tensor([[80, 80]] * 2), targets))
    expected_losses, expected_grads = gradients(one_pass)
    for key, value in expected_losses.items():
        assert torch.equal(losses[key], value), key
    for got, want in zip(grads, expected_grads, strict=True):
        assert torch.allclose(got, want, rtol=0, atol=1e-7)
