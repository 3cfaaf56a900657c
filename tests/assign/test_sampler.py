import torch

from detkit.assign.sampler import BalancedSampler


def test_sampler_respects_caps_and_fraction():
    labels = torch.tensor([[1] * 10 + [0] * 100 + [-1] * 5, [1] * 2 + [0] * 3 + [-1] * 110])
    pos, neg = BalancedSampler(16, 0.25)(labels, torch.Generator().manual_seed(0))
    assert pos[0].sum() == 4 and neg[0].sum() == 12
    # Too few of both: take all of them.
    assert pos[1].sum() == 2 and neg[1].sum() == 3
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()


def test_sampler_fills_with_negatives_and_is_random():
    labels = torch.tensor([[0] * 50])
    pos, neg = BalancedSampler(8, 0.5)(labels, torch.Generator().manual_seed(0))
    assert pos.sum() == 0 and neg.sum() == 8
    _, neg2 = BalancedSampler(8, 0.5)(labels, torch.Generator().manual_seed(1))
    assert not torch.equal(neg, neg2)
