import torch

from detkit.assign.matcher import Matcher


def test_thresholds_and_ignore_band():
    # 1 ground truth, 4 priors with IoU 0.8 (pos), 0.5 (ignore), 0.2 (neg), 0.69 (ignore).
    iou = torch.tensor([[[0.8, 0.5, 0.2, 0.69]]])
    _, labels = Matcher(0.7, 0.3, allow_low_quality=False)(iou)
    assert labels.tolist() == [[1, -1, 0, -1]]


def test_low_quality_matches_give_every_object_a_prior():
    # GT 0 overlaps best at 0.4 (below 0.7): prior 1 becomes positive for GT 0.
    iou = torch.tensor([[[0.1, 0.4, 0.2], [0.9, 0.1, 0.0]]])
    index, labels = Matcher(0.7, 0.3, allow_low_quality=True)(iou)
    assert labels.tolist() == [[1, 1, 0]]
    assert index[0, :2].tolist() == [1, 0]
    _, labels = Matcher(0.7, 0.3, allow_low_quality=False)(iou)
    assert labels.tolist() == [[1, -1, 0]]


def test_padding_and_images_without_objects():
    iou = torch.tensor([[[0.9, 0.0]], [[0.0, 0.0]]])
    valid = torch.tensor([[True], [False]])
    _, labels = Matcher(0.5, 0.4)(iou, valid)
    assert labels.tolist() == [[1, 0], [0, 0]]
    index, labels = Matcher(0.5, 0.4)(torch.zeros(2, 0, 3))
    assert labels.tolist() == [[0, 0, 0], [0, 0, 0]] and index.shape == (2, 3)


def test_background_range_low_min_ignores_far_priors():
    iou = torch.tensor([[[0.6, 0.3, 0.05]]])
    _, labels = Matcher(0.5, (0.1, 0.5), allow_low_quality=False)(iou)
    assert labels.tolist() == [[1, 0, -1]]
