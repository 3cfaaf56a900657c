import math

import pytest
import torch

from detkit.priors.default_boxes import SSD300_ASPECT_RATIOS, DefaultBoxGenerator, ssd_scales

SSD300_MAPS = [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]


def test_ssd300_has_8732_default_boxes_with_the_papers_per_level_counts():
    generator = DefaultBoxGenerator(SSD300_ASPECT_RATIOS, min_scale=0.2, max_scale=0.9, first_scale=0.1)
    assert generator.num_boxes_per_location == [4, 6, 6, 6, 4, 4]
    boxes = generator(SSD300_MAPS, (300, 300))
    assert boxes.shape == (8732, 4)
    per_level = [h * w * b for (h, w), b in zip(SSD300_MAPS, generator.num_boxes_per_location, strict=True)]
    assert per_level == [5776, 2166, 600, 150, 36, 4]
    # Level boundaries: the last level is the single 1x1 cell, centred in the image.
    last = boxes[-4:]
    torch.testing.assert_close((last[:, :2] + last[:, 2:]) / 2, torch.full((4, 2), 150.0))


def test_scales_follow_the_linear_rule_with_conv4_3_at_one_tenth():
    assert ssd_scales(5, min_scale=0.2, max_scale=0.9) == pytest.approx([0.2, 0.375, 0.55, 0.725, 0.9, 1.075])
    assert ssd_scales(6, min_scale=0.2, max_scale=0.9, first_scale=0.1) == pytest.approx(
        [0.1, 0.2, 0.375, 0.55, 0.725, 0.9, 1.075]
    )
    assert ssd_scales(1) == pytest.approx([0.2, 0.9])


def test_first_cell_boxes_of_ssd300_by_hand():
    boxes = DefaultBoxGenerator(SSD300_ASPECT_RATIOS)(SSD300_MAPS, (300, 300))
    step = 300 / 38
    centre = 0.5 * step
    sizes = [
        (30.0, 30.0),  # scale 0.1 of 300
        (math.sqrt(0.1 * 0.2) * 300,) * 2,  # the extra box, sqrt(s_0 s_1)
        (30.0 * math.sqrt(2), 30.0 / math.sqrt(2)),  # ratio 2 is wider than high
        (30.0 / math.sqrt(2), 30.0 * math.sqrt(2)),
    ]
    expected = torch.tensor(
        [[centre - w / 2, centre - h / 2, centre + w / 2, centre + h / 2] for w, h in sizes]
    )
    torch.testing.assert_close(boxes[:4], expected)
    # Second level (19x19, 6 boxes): first box at scale 0.2, ratio-3 pair at the end.
    second = boxes[5776 : 5776 + 6]
    widths, heights = second[:, 2] - second[:, 0], second[:, 3] - second[:, 1]
    torch.testing.assert_close(widths[0], torch.tensor(60.0))
    torch.testing.assert_close(widths[4] / heights[4], torch.tensor(3.0))
    torch.testing.assert_close(heights[5] / widths[5], torch.tensor(3.0))
    torch.testing.assert_close(widths[4] * heights[4], torch.tensor(3600.0))


def test_order_is_level_then_y_then_x_then_box():
    generator = DefaultBoxGenerator([[], [2]], scales=[0.1, 0.2, 0.4])
    boxes = generator([(2, 3), (1, 1)], (20, 30))
    assert boxes.shape == (2 * 3 * 2 + 4, 4)
    centres = ((boxes[:12, :2] + boxes[:12, 2:]) / 2)[::2]  # one per cell
    expected = torch.tensor([[5.0, 5.0], [15.0, 5.0], [25.0, 5.0], [5.0, 15.0], [15.0, 15.0], [25.0, 15.0]])
    torch.testing.assert_close(centres, expected)


def test_non_square_images_scale_each_side_and_clip_is_optional():
    generator = DefaultBoxGenerator([[]], scales=[0.5, 0.5])
    box = generator([(1, 1)], (100, 200))[0]
    torch.testing.assert_close(box, torch.tensor([50.0, 25.0, 150.0, 75.0]))
    big = DefaultBoxGenerator([[]], scales=[1.5, 1.5], clip=True)([(1, 1)], (10, 10))
    torch.testing.assert_close(big[0], torch.tensor([0.0, 0.0, 10.0, 10.0]))
    unclipped = DefaultBoxGenerator([[]], scales=[1.5, 1.5])([(1, 1)], (10, 10))
    torch.testing.assert_close(unclipped[0], torch.tensor([-2.5, -2.5, 12.5, 12.5]))


def test_boxes_are_cached_per_sizes():
    generator = DefaultBoxGenerator([[2]], scales=[0.2, 0.4])
    first = generator([(4, 4)], (32, 32))
    assert generator([(4, 4)], (32, 32)) is first
    assert generator([(5, 5)], (40, 40)).shape == (5 * 5 * 4, 4)


def test_configuration_errors_are_explained():
    with pytest.raises(ValueError, match="2 levels"):
        DefaultBoxGenerator([[2], [2]])([(3, 3)], (30, 30))
    with pytest.raises(ValueError, match="needs 3 values"):
        DefaultBoxGenerator([[2], [2]], scales=[0.1, 0.2])
    with pytest.raises(ValueError, match="positive"):
        DefaultBoxGenerator([[0.0]])
