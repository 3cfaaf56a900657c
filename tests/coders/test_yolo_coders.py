import math

import torch

from detkit.coders.yolo import YOLOv1Coder, YOLOv3Coder


def random_boxes(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 100 + 1
    return torch.cat((xy, xy + wh), dim=1)


def test_yolov1_encode_by_hand():
    # 448×448 canvas, 7×7 grid: cells of 64 px. Box centre (100, 200), size 112 × 28.
    coder = YOLOv1Coder()
    box = torch.tensor([[44.0, 186.0, 156.0, 214.0]])
    codes = coder.encode(box, torch.tensor([[1.0, 3.0]]), torch.tensor([64.0, 64.0]), torch.tensor([448.0, 448.0]))
    expected = torch.tensor([[100 / 64 - 1, 200 / 64 - 3, math.sqrt(112 / 448), math.sqrt(28 / 448)]])
    torch.testing.assert_close(codes, expected)


def test_yolov1_round_trip():
    coder = YOLOv1Coder()
    boxes = random_boxes(50)
    cells = torch.randint(0, 7, (50, 2)).float()
    cell_size, canvas = torch.tensor([40.0, 30.0]), torch.tensor([280.0, 210.0])
    codes = coder.encode(boxes, cells, cell_size, canvas)
    torch.testing.assert_close(coder.decode(codes, cells, cell_size, canvas), boxes, rtol=1e-5, atol=1e-4)


def test_yolov3_encode_by_hand():
    # Stride 16, cell (2, 1), anchor 30 × 60. Box centre (40, 20), size 60 × 30.
    coder = YOLOv3Coder()
    box = torch.tensor([[10.0, 5.0, 70.0, 35.0]])
    codes = coder.encode(box, torch.tensor([[2.0, 1.0]]), torch.tensor([16.0]), torch.tensor([[30.0, 60.0]]))
    expected = torch.tensor([[40 / 16 - 2, 20 / 16 - 1, math.log(2.0), math.log(0.5)]])
    torch.testing.assert_close(codes, expected)


def test_yolov3_round_trip_and_clamp():
    coder = YOLOv3Coder()
    boxes = random_boxes(50, seed=1)
    cells = torch.randint(0, 13, (50, 2)).float()
    strides = torch.tensor([8.0, 16.0, 32.0]).repeat(17)[:50]
    anchors = torch.rand(50, 2) * 100 + 5
    codes = coder.encode(boxes, cells, strides, anchors)
    torch.testing.assert_close(coder.decode(codes, cells, strides, anchors), boxes, rtol=1e-5, atol=1e-4)
    huge = torch.tensor([[0.5, 0.5, 50.0, 50.0]])
    decoded = coder.decode(huge, torch.zeros(1, 2), torch.tensor([8.0]), torch.tensor([[10.0, 10.0]]))
    assert torch.isfinite(decoded).all()
    torch.testing.assert_close(decoded[0, 2] - decoded[0, 0], torch.tensor(10.0 * 1000 / 16))
