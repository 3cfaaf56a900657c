import math

import pytest
import torch
from torchvision.ops import roi_align

from detkit.ops.roi_levels import pool_rois_by_level, roi_levels


def test_levels_follow_the_fpn_rule_by_hand():
    # sqrt(area) 224 -> k0 = 4; 112 -> 3; 448 -> 5; 111 -> floor(4 + log2(111/224)) = 2, clamped to 3;
    # 1000 -> floor(4 + 2.16) = 6, clamped to 5; a 100 x 400 box has sqrt(area) 200 -> 3.
    boxes = torch.tensor(
        [
            [0.0, 0, 224, 224],
            [10, 10, 122, 122],
            [0, 0, 448, 448],
            [0, 0, 111, 111],
            [0, 0, 1000, 1000],
            [0, 0, 100, 400],
        ]
    )
    assert roi_levels(boxes, min_level=3, max_level=5).tolist() == [4, 3, 5, 3, 5, 3]
    for side in (40.0, 70.0, 150.0, 300.0):
        expected = min(max(math.floor(4 + math.log2(side / 224)), 2), 6)
        assert int(roi_levels(torch.tensor([[0.0, 0, side, side]]), min_level=2, max_level=6)) == expected
    # A smaller canonical size moves RoIs of small images up the pyramid.
    assert roi_levels(
        torch.tensor([[0.0, 0, 32, 32], [0, 0, 31, 31]]), min_level=3, max_level=5, canonical_size=32
    ).tolist() == [4, 3]


def test_each_roi_is_pooled_from_its_level():
    torch.manual_seed(0)
    features = [torch.rand(2, 4, 32, 32), torch.rand(2, 4, 16, 16), torch.rand(2, 4, 8, 8)]
    strides = [8, 16, 32]
    rois = torch.tensor([[0.0, 10, 10, 90, 90], [1, 0, 0, 224, 224], [1, 20, 30, 270, 260], [0, 5, 5, 15, 15]])
    pooled = pool_rois_by_level(features, strides, rois, output_size=3)
    expected_levels = roi_levels(rois[:, 1:], min_level=3, max_level=5).tolist()
    assert expected_levels == [3, 4, 4, 3]
    for i, level in enumerate(expected_levels):
        index = level - 3
        alone = roi_align(features[index], rois[i : i + 1], 3, 1.0 / strides[index], 2, aligned=True)
        torch.testing.assert_close(pooled[i : i + 1], alone)


def test_mismatched_levels_fail_clearly():
    with pytest.raises(ValueError, match="2 feature maps for 3 strides"):
        pool_rois_by_level([torch.rand(1, 2, 4, 4)] * 2, [8, 16, 32], torch.zeros(1, 5), output_size=2)
