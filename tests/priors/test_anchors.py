import math

import torch

from detkit.priors.anchors import AnchorGenerator


def test_nine_anchors_per_location_with_areas_and_ratios():
    gen = AnchorGenerator(sizes=(32, 64, 128), aspect_ratios=(0.5, 1.0, 2.0), stride=16)
    assert gen.num_anchors_per_location == 9
    anchors = gen(3, 4)
    assert anchors.shape == (3 * 4 * 9, 4)
    cell = anchors[:9]
    w = cell[:, 2] - cell[:, 0]
    h = cell[:, 3] - cell[:, 1]
    expected_areas = torch.tensor([s * s for s in (32, 64, 128) for _ in range(3)], dtype=torch.float32)
    torch.testing.assert_close(w * h, expected_areas)
    torch.testing.assert_close(h / w, torch.tensor([0.5, 1.0, 2.0] * 3))
    # First cell centred at (8, 8) with offset 0.5 and stride 16.
    torch.testing.assert_close((cell[:, 0] + cell[:, 2]) / 2, torch.full((9,), 8.0))


def test_anchor_order_is_y_then_x_then_anchor():
    gen = AnchorGenerator(sizes=(16,), aspect_ratios=(1.0,), stride=10)
    anchors = gen(2, 3)
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    expected = torch.tensor([[5.0, 5.0], [15.0, 5.0], [25.0, 5.0], [5.0, 15.0], [15.0, 15.0], [25.0, 15.0]])
    torch.testing.assert_close(centres, expected)
    assert math.isclose(float(anchors[0, 2] - anchors[0, 0]), 16.0)
