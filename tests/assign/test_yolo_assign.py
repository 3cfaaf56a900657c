"""YOLO target assignment on hand-made cases: which cell, which predictor/anchor, the ignore mask."""

import torch

from detkit.assign.yolo import assign_yolov1, assign_yolov3, one_per_slot
from detkit.ops.boxes import pad_boxes


def test_yolov1_responsible_cell_and_predictor():
    # 140 × 140 canvas, 7 × 7 grid: 20 px cells.
    big = torch.tensor([25.0, 45, 55, 75])  # centre (40, 60): column 2, row 3 → cell 23
    corner = torch.tensor([100.0, 0, 140, 20])  # centre (120, 10): column 6, row 0 → cell 6
    small_same_cell = torch.tensor([38.0, 58, 44, 64])  # centre (41, 61): also cell 23, smaller
    edge = torch.tensor([130.0, 130, 150, 150])  # centre (140, 140) on the border: clamped to cell 48
    gt_boxes, gt_valid = pad_boxes([torch.stack((small_same_cell, big, corner)), edge[None]])
    pred = torch.tensor([0.0, 0, 1, 1]).repeat(2, 49, 2, 1)
    pred[0, 23, 1] = torch.tensor([25.0, 45, 55, 60])  # IoU 0.5 with `big`
    pred[0, 23, 0] = torch.tensor([25.0, 45, 35, 55])  # IoU 1/9
    a = assign_yolov1(gt_boxes, gt_valid, pred, grid_size=(7, 7), cell_size=torch.tensor([20.0, 20.0]))
    expected_index = torch.full((2, 49), -1)
    expected_index[0, 23], expected_index[0, 6], expected_index[1, 48] = 1, 2, 0
    torch.testing.assert_close(a.gt_index, expected_index)
    assert int(a.num_dropped) == 1  # the small box sharing cell 23
    expected_resp = torch.zeros(2, 49, 2, dtype=torch.bool)
    expected_resp[0, 23, 1] = True  # the better-overlapping predictor
    expected_resp[0, 6, 0] = True  # no overlap at all: the first predictor
    expected_resp[1, 48, 0] = True
    torch.testing.assert_close(a.responsible, expected_resp)
    torch.testing.assert_close(a.iou[0, 23], torch.tensor([1 / 9, 0.5]))
    torch.testing.assert_close(a.matched_boxes[0, 23], big)
    assert a.matched_boxes[0, 0].abs().sum() == 0


def test_yolov1_empty_batch():
    gt_boxes, gt_valid = pad_boxes([torch.zeros(0, 4), torch.zeros(0, 4)])
    a = assign_yolov1(
        gt_boxes, gt_valid, torch.rand(2, 9, 2, 4), grid_size=(3, 3), cell_size=torch.tensor([10.0, 10.0])
    )
    assert (a.gt_index == -1).all() and not a.responsible.any() and int(a.num_dropped) == 0


def test_one_per_slot_prefers_priority_then_lower_index():
    slots = torch.tensor([[2, 2, 2, 0]])
    valid = torch.tensor([[True, True, True, False]])
    owner = one_per_slot(slots, valid, torch.tensor([[1.0, 3.0, 3.0, 9.0]]), num_slots=3)
    torch.testing.assert_close(owner, torch.tensor([[-1, -1, 1]]))


def _v3_case():
    # Two levels: stride 8 (8 × 8 cells) and stride 16 (4 × 4 cells) on a 64 × 64 canvas, 2 anchors each.
    anchors = torch.tensor([[[8.0, 8.0], [16.0, 8.0]], [[32.0, 32.0], [16.0, 48.0]]])
    wide = torch.tensor([20.0, 20, 36, 28])  # 16 × 8, centre (28, 24): level 0, anchor 1, cell (3, 3)
    tall = torch.tensor([0.0, 0, 16, 48])  # 16 × 48, centre (8, 24): level 1, anchor 1, cell (0, 1)
    rival = torch.tensor([21.0, 21, 35, 27])  # 14 × 6, same slot as `wide`, worse fit (0.656 < 1)
    gt_boxes, gt_valid = pad_boxes([torch.stack((rival, wide, tall)), torch.zeros(0, 4)])
    return anchors, gt_boxes, gt_valid, wide, tall


def test_yolov3_best_anchor_across_levels_and_cell():
    anchors, gt_boxes, gt_valid, _, _ = _v3_case()
    pred = torch.tensor([100.0, 100, 101, 101]).repeat(2, 160, 1)  # overlaps nothing
    a = assign_yolov3(gt_boxes, gt_valid, pred, anchors=anchors, strides=(8, 16), feature_sizes=[(8, 8), (4, 4)])
    expected = torch.full((2, 160), -1)
    expected[0, (3 * 8 + 3) * 2 + 1] = 1  # prior 55
    expected[0, 128 + (1 * 4 + 0) * 2 + 1] = 2  # prior 137
    torch.testing.assert_close(a.gt_index, expected)
    assert int(a.num_dropped) == 1
    assert not a.ignore.any()


def test_yolov3_ignore_mask():
    anchors, gt_boxes, gt_valid, wide, tall = _v3_case()
    pred = torch.tensor([100.0, 100, 101, 101]).repeat(2, 160, 1)
    pred[0, 10] = wide + torch.tensor([1.0, 0, 1, 0])  # IoU 15/17 with `wide`: ignored
    pred[0, 55] = wide  # the positive itself: never ignored
    pred[0, 11] = torch.tensor([0.0, 0, 16, 24])  # IoU exactly 0.5 with `tall`: not above the threshold
    pred[0, 12] = torch.tensor([0.0, 0, 16, 40])  # IoU 0.83 with `tall`: ignored
    pred[1, 10] = wide  # image 1 has no objects: nothing to overlap
    a = assign_yolov3(
        gt_boxes, gt_valid, pred, anchors=anchors, strides=(8, 16), feature_sizes=[(8, 8), (4, 4)], ignore_threshold=0.5
    )
    expected = torch.zeros(2, 160, dtype=torch.bool)
    expected[0, 10] = expected[0, 12] = True
    torch.testing.assert_close(a.ignore, expected)


def test_yolov3_empty_batch():
    anchors = torch.tensor([[[8.0, 8.0]]])
    gt_boxes, gt_valid = pad_boxes([torch.zeros(0, 4)])
    a = assign_yolov3(gt_boxes, gt_valid, torch.rand(1, 16, 4), anchors=anchors, strides=(8,), feature_sizes=[(4, 4)])
    assert (a.gt_index == -1).all() and not a.ignore.any()


def test_yolov3_extra_positives_above_a_shape_threshold():
    anchors, gt_boxes, gt_valid, _, _ = _v3_case()
    pred = torch.tensor([100.0, 100, 101, 101]).repeat(2, 160, 1)
    a = assign_yolov3(
        gt_boxes, gt_valid, pred, anchors=anchors, strides=(8, 16), feature_sizes=[(8, 8), (4, 4)],
        extra_positive_threshold=0.3,
    )
    expected = torch.full((2, 160), -1)
    # `wide` (16 × 8) also fits the 8 × 8 anchor (IoU 0.5): prior 54 beside 55. It beats `rival`
    # there too (0.5 > 0.48), so `rival` stays dropped.
    expected[0, 54] = expected[0, 55] = 1
    # `tall` (16 × 48) also fits the 32 × 32 anchor of level 1 (IoU 0.4): prior 136 beside 137.
    expected[0, 136] = expected[0, 137] = 2
    torch.testing.assert_close(a.gt_index, expected)
    assert int(a.num_dropped) == 1
