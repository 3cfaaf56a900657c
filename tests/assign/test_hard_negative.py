import pytest
import torch

from detkit.assign.hard_negative import hard_negative_mining


def _hand_case():
    # Image 0: 2 positives and 10 negatives with distinct losses.
    # Image 1: 1 positive, an ignored prior with the largest loss, and only 2 negatives.
    # Image 2: no positives, 4 negatives.
    losses = torch.tensor(
        [
            [0.0, 0.0, 0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, 0.5, 0.05],
            [0.0, 9.0, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.3, 0.1, 0.4, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    positive = torch.zeros(3, 12, dtype=torch.bool)
    positive[0, :2] = True
    positive[1, 0] = True
    negative = torch.zeros(3, 12, dtype=torch.bool)
    negative[0, 2:] = True
    negative[1, 2:4] = True
    negative[2, :4] = True
    return losses, positive, negative


def test_three_hard_negatives_per_positive_on_a_hand_case():
    losses, positive, negative = _hand_case()
    selected = hard_negative_mining(losses, positive, negative, ratio=3, min_negatives=0)
    # Image 0: exactly 3:1, the six largest losses 0.9, 0.8, 0.7, 0.6, 0.5, 0.4.
    assert selected[0].nonzero().flatten().tolist() == [2, 4, 6, 8, 9, 10]
    assert int(selected[0].sum()) == 3 * int(positive[0].sum())
    # Image 1: only two negatives exist; the ignored prior (loss 9) is never chosen.
    assert selected[1].nonzero().flatten().tolist() == [2, 3]
    # Image 2: no positives and no minimum → nothing.
    assert not selected[2].any()
    assert not (selected & positive).any()


def test_min_negatives_gives_background_only_images_their_hardest_negatives():
    losses, positive, negative = _hand_case()
    selected = hard_negative_mining(losses, positive, negative, ratio=3, min_negatives=2)
    assert selected[2].nonzero().flatten().tolist() == [0, 2]  # losses 0.3 and 0.4
    # A minimum below ratio × positives leaves images with objects at exactly 3:1.
    assert int(selected[0].sum()) == 6


def test_matches_a_per_image_reference_on_random_data():
    generator = torch.Generator().manual_seed(0)
    losses = torch.rand(5, 300, generator=generator)
    labels = torch.randint(-1, 2, (5, 300), generator=generator)
    labels[:, 40:] = labels[:, 40:].clamp(min=-1, max=0)  # few positives, many negatives
    positive, negative = labels == 1, labels == 0
    selected = hard_negative_mining(losses, positive, negative, ratio=3, min_negatives=5)
    for row in range(5):
        candidates = negative[row].nonzero().flatten()
        count = min(max(3 * int(positive[row].sum()), 5), candidates.numel())
        top = candidates[losses[row, candidates].argsort(descending=True)[:count]]
        assert sorted(top.tolist()) == selected[row].nonzero().flatten().tolist()


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="one shape"):
        hard_negative_mining(
            torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool), torch.zeros(2, 4, dtype=torch.bool)
        )
