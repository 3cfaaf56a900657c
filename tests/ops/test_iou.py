import torch
from torchvision import ops as tv_ops

from detkit.ops.iou import batched_box_iou, box_iou, elementwise_box_iou, shape_iou
from tests.ops.random_boxes import random_boxes


def test_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 5.0, 15.0, 15.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    # Overlap 5x5 = 25, union 100 + 100 - 25 = 175.
    torch.testing.assert_close(box_iou(a, b), torch.tensor([[25 / 175, 0.0, 1.0]]))


def test_batched_iou_matches_torchvision_and_zero_for_padding():
    gt = torch.stack((random_boxes(5, 1), random_boxes(5, 2)))
    gt[1, 3:] = 0  # padding rows
    anchors = random_boxes(40, 3)
    iou = batched_box_iou(gt, anchors)
    torch.testing.assert_close(iou[0], tv_ops.box_iou(gt[0], anchors))
    torch.testing.assert_close(iou[1, :3], tv_ops.box_iou(gt[1, :3], anchors))
    assert (iou[1, 3:] == 0).all()


def test_elementwise_iou_is_the_diagonal_of_torchvision_and_broadcasts():
    boxes1, boxes2 = random_boxes(30, 4), random_boxes(30, 5)
    boxes2[:10] = boxes1[:10] + 3.0  # shifted copies: overlapping pairs, not only disjoint ones
    torch.testing.assert_close(elementwise_box_iou(boxes1, boxes2), tv_ops.box_iou(boxes1, boxes2).diagonal())
    # [2, 30, 4] against [30, 4]: each image's boxes against the same targets.
    stacked = torch.stack((boxes1, boxes2))
    torch.testing.assert_close(elementwise_box_iou(stacked, boxes2)[1], torch.ones(30))
    # Overlap 5 × 10 = 50 of union 100 + 100 − 50; a zero-area box overlaps nothing.
    pair = elementwise_box_iou(
        torch.tensor([[0.0, 0, 10, 10], [3.0, 3, 3, 3]]), torch.tensor([[5.0, 0, 15, 10], [0.0, 0, 6, 6]])
    )
    torch.testing.assert_close(pair, torch.tensor([50 / 150, 0.0]))


def test_shape_iou_by_hand():
    iou = shape_iou(torch.tensor([[16.0, 8.0]]), torch.tensor([[8.0, 8.0], [16.0, 8.0], [8.0, 16.0]]))
    torch.testing.assert_close(iou, torch.tensor([[0.5, 1.0, 64 / 192]]))


def test_shape_iou_is_box_iou_of_boxes_centred_at_the_origin():
    wh1, wh2 = random_boxes(6, 6)[:, 2:] / 3, random_boxes(4, 7)[:, 2:] / 3
    torch.testing.assert_close(shape_iou(wh1, wh2), tv_ops.box_iou(_centred(wh1), _centred(wh2)))


def _centred(wh: torch.Tensor) -> torch.Tensor:
    return torch.cat((-wh / 2, wh / 2), dim=1)
