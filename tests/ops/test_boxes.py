import torch
from torchvision import ops as tv_ops

from detkit.ops.boxes import (
    batched_box_iou,
    box_area,
    box_iou,
    clip_boxes,
    clip_boxes_per_image,
    cxcywh_to_xyxy,
    pad_boxes,
    xyxy_to_cxcywh,
)


def random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 50 + 1
    return torch.cat((xy, xy + wh), 1)


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


def test_area_and_conversions_round_trip():
    boxes = random_boxes(20)
    torch.testing.assert_close(box_area(boxes), tv_ops.box_area(boxes))
    torch.testing.assert_close(xyxy_to_cxcywh(boxes), tv_ops.box_convert(boxes, "xyxy", "cxcywh"))
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)


def test_clip_and_clip_per_image():
    boxes = torch.tensor([[-5.0, -5.0, 50.0, 70.0]])
    torch.testing.assert_close(clip_boxes(boxes, 60, 40), torch.tensor([[0.0, 0.0, 40.0, 60.0]]))
    torch.testing.assert_close(clip_boxes(boxes, 60, 40), tv_ops.clip_boxes_to_image(boxes, (60, 40)))
    batch = boxes.expand(2, 1, 4)
    sizes = torch.tensor([[60, 40], [30, 100]])
    clipped = clip_boxes_per_image(batch, sizes)
    torch.testing.assert_close(clipped[1, 0], torch.tensor([0.0, 0.0, 50.0, 30.0]))


def test_pad_boxes_mask():
    padded, valid = pad_boxes([torch.zeros(0, 4), random_boxes(3)])
    assert padded.shape == (2, 3, 4)
    assert valid.tolist() == [[False] * 3, [True] * 3]
