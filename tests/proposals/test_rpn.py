"""RPN proposals in their two forms: a list per image (PyTorch inference) and one padded tensor
(the exported graphs) hold the same boxes in the same order."""

import torch

from detkit.proposals.rpn import RPN


def test_padded_proposals_equal_forward():
    torch.manual_seed(0)
    rpn = RPN(in_channels=8, stride=8, anchor_sizes=(16, 40), pre_nms_topk_test=80, post_nms_topk_test=30, min_size=4.0)
    rpn.eval()
    with torch.no_grad():  # spread objectness and deltas: distinct scores, boxes of many sizes
        for layer in (rpn.objectness, rpn.deltas):
            layer.weight.normal_(std=0.5)
    features = torch.randn(3, 8, 8, 8)
    image_sizes = torch.tensor([[64, 64], [40, 64], [64, 20]])
    with torch.no_grad():
        proposals, losses = rpn(features, image_sizes)
        boxes, valid = rpn.padded_proposals(features, image_sizes)
    assert losses == {}
    assert boxes.shape == (3, 30, 4) and valid.shape == (3, 30)
    counts = valid.sum(dim=1)
    assert counts.tolist() == [len(p) for p in proposals]
    assert counts.min() < 30  # the narrow image has fewer proposals than the cap: padding is exercised
    for index, kept in enumerate(proposals):
        assert torch.equal(boxes[index, : counts[index]], kept)
        assert valid[index, : counts[index]].all() and not boxes[index, counts[index] :].any()
