import torch
from torchvision import ops as tv_ops

from detkit.ops.boxes import (
    box_area,
    clip_boxes,
    clip_boxes_per_image,
    cxcywh_to_xyxy,
    pad_boxes,
    xyxy_to_cxcywh,
)
from tests.ops.random_boxes import random_boxes


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
