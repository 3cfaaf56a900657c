"""Both NMS call patterns must keep exactly what a plain per-image, per-class loop over
torchvision.ops.nms keeps, on random and on hand-made candidates."""

import pytest
import torch
from torchvision.ops import nms

from detkit.ops.batched_nms import batched_nms_padded, shift_groups
from detkit.ops.nms import select_padded

STRATEGIES = ("per_image", "one_call")


def reference(boxes, scores, labels, valid, iou_threshold, limit, class_agnostic=False):
    """Per image, per class: torchvision's nms, then the best ``limit`` by score."""
    kept = []
    for b, s, lab, v in zip(boxes, scores, labels, valid, strict=True):
        chosen = []
        groups = [None] if class_agnostic else lab[v].unique().tolist()
        for group in groups:
            members = (v if group is None else v & (lab == group)).nonzero().squeeze(1)
            chosen += members[nms(b[members], s[members], iou_threshold)].tolist()
        chosen.sort(key=lambda i: -float(s[i]))
        kept.append(chosen[:limit])
    return kept


def as_lists(index, counts):
    return [row[:n].tolist() for row, n in zip(index, counts.tolist(), strict=True)]


def random_candidates(num_images, num_candidates, num_classes, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_images, num_candidates, 2, generator=g) * 200
    wh = torch.rand(num_images, num_candidates, 2, generator=g) * 60 + 2
    boxes = torch.cat((xy, xy + wh), -1)
    scores = torch.rand(num_images, num_candidates, generator=g)
    labels = torch.randint(1, num_classes + 1, (num_images, num_candidates), generator=g)
    valid = torch.rand(num_images, num_candidates, generator=g) > 0.3
    return boxes, scores, labels, valid


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_random_candidates_match_the_per_class_loop(strategy, class_agnostic):
    boxes, scores, labels, valid = random_candidates(5, 300, 6, seed=1)
    valid[3] = False  # an image with no candidate at all
    index, counts = batched_nms_padded(
        boxes, scores, labels, valid, iou_threshold=0.45, max_detections=40, class_agnostic=class_agnostic,
        strategy=strategy,
    )  # fmt: skip
    assert index.shape == (5, 40) and counts.shape == (5,)
    want = reference(boxes, scores, labels, valid, 0.45, 40, class_agnostic)
    assert as_lists(index, counts) == want
    assert counts[3] == 0 and counts.max() == 40  # the cap binds somewhere, and the empty image stays empty


def test_strategies_agree_when_the_cap_does_not_bind():
    boxes, scores, labels, valid = random_candidates(3, 150, 4, seed=2)
    got = [
        batched_nms_padded(boxes, scores, labels, valid, iou_threshold=0.5, max_detections=500, strategy=s)
        for s in STRATEGIES
    ]
    assert torch.equal(got[0][0], got[1][0]) and torch.equal(got[0][1], got[1][1])
    assert (got[0][1] < 500).all()
    assert as_lists(*got[0]) == reference(boxes, scores, labels, valid, 0.5, 500)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_hand_made_overlaps(strategy):
    # Image 0: two boxes of class 1 with IoU 0.9 (one suppressed), the same box again as class 2
    # (kept: another class). Image 1: the exact box of image 0's winner (kept: another image).
    # Image 2: negative coordinates; two class-1 boxes with IoU 9/11, and a class-2 box that a shift
    # by label × (largest coordinate + 1), torchvision's, would move onto the best class-1 box.
    boxes = torch.tensor([
        [[0, 0, 10, 10], [0, 0, 10, 9], [0, 0, 10, 10.0]],
        [[0, 0, 10, 10], [50, 50, 60, 60], [0, 0, 0, 0]],
        [[-30, 0, -20, 10], [-31, 0, -21, 10], [-41, 0, -31, 10.0]],
    ])  # fmt: skip
    scores = torch.tensor([[0.9, 0.8, 0.7], [0.6, 0.5, 0.4], [0.9, 0.8, 0.7]])
    labels = torch.tensor([[1, 1, 2], [1, 1, 1], [1, 1, 2]])
    valid = torch.tensor([[True, True, True], [True, True, False], [True, True, True]])
    index, counts = batched_nms_padded(
        boxes, scores, labels, valid, iou_threshold=0.5, max_detections=2, strategy=strategy
    )
    assert as_lists(index, counts) == [[0, 2], [0, 1], [0, 2]]
    index, counts = batched_nms_padded(
        boxes, scores, labels, valid, iou_threshold=0.9, max_detections=1, strategy=strategy
    )
    assert as_lists(index, counts) == [[0], [0], [0]]  # the cap keeps the best one


def test_shift_groups_moves_each_group_by_whole_extents():
    boxes = torch.tensor([[-100.0, -5, -50, 5], [-100.0, -5, -50, 5], [0.0, 0, 1, 1]])
    shifted = shift_groups(boxes, torch.tensor([0, 1, 0]), torch.tensor([0, 0, 2]))
    extent = 5.0 - (-100.0) + 1  # largest minus lowest coordinate, plus one
    assert torch.equal(shifted[0], boxes[0])
    assert torch.equal(shifted[1], boxes[1] + torch.tensor([extent, 0, extent, 0]))
    assert torch.equal(shifted[2], boxes[2] + torch.tensor([0, 2 * extent, 0, 2 * extent]))
    # Group 1 now starts right of where any group-0 box can end.
    assert shifted[1, 0] > boxes[:, 2].max()


def test_unknown_strategy_is_refused():
    boxes, scores, labels, valid = random_candidates(1, 5, 2, seed=3)
    with pytest.raises(ValueError, match="per_image"):
        batched_nms_padded(boxes, scores, labels, valid, iou_threshold=0.5, max_detections=3, strategy="loop")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_padded_fills_rows_and_zero_pads(strategy):
    boxes, scores, labels, valid = random_candidates(4, 100, 3, seed=4)
    valid[1] = False
    padded = select_padded(boxes, scores, labels, valid, iou_threshold=0.5, max_detections=30, strategy=strategy)
    assert padded.boxes.shape == (4, 30, 4) and padded.scores.shape == padded.labels.shape == (4, 30)
    want = reference(boxes, scores, labels, valid, 0.5, 30)
    for image, detections in enumerate(padded.to_list()):
        assert torch.equal(detections["boxes"], boxes[image, want[image]])
        assert torch.equal(detections["scores"], scores[image, want[image]])
        assert torch.equal(detections["labels"], labels[image, want[image]])
    real = padded.valid()
    assert real.sum(1).tolist() == [len(w) for w in want]
    assert not padded.boxes[~real].any() and not padded.scores[~real].any() and not padded.labels[~real].any()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_no_candidate_columns_give_empty_rows(strategy):
    boxes, scores, labels = torch.zeros(2, 0, 4), torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.long)
    index, counts = batched_nms_padded(
        boxes,
        scores,
        labels,
        torch.zeros(2, 0, dtype=torch.bool),
        iou_threshold=0.5,
        max_detections=3,
        strategy=strategy,
    )
    assert index.shape == (2, 3) and counts.tolist() == [0, 0]
