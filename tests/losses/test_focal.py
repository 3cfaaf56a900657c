import math

import torch

from detkit.losses import focal_loss


def by_hand(logit: float, target: int, alpha: float, gamma: float) -> float:
    """The paper's FL(p_t) = −α_t (1 − p_t)^γ log(p_t), one entry at a time."""
    p = 1.0 / (1.0 + math.exp(-logit))
    p_t = p if target == 1 else 1.0 - p
    alpha_t = alpha if target == 1 else 1.0 - alpha
    return -alpha_t * (1.0 - p_t) ** gamma * math.log(p_t)


def test_focal_loss_against_its_formula():
    logits = torch.tensor([[2.0, -1.0, 0.0], [-3.0, 0.5, 4.0]])
    targets = torch.tensor([[1, 0, 0], [0, 1, 0]])
    expected = sum(
        by_hand(float(logits[i, j]), int(targets[i, j]), 0.25, 2.0) for i in range(2) for j in range(3)
    )
    assert math.isclose(float(focal_loss(logits, targets)), expected, rel_tol=1e-6)
    # Normalised by the number of positives (here 2), as RetinaNet does.
    assert math.isclose(float(focal_loss(logits, targets, normalizer=2)), expected / 2, rel_tol=1e-6)


def test_gamma_zero_and_no_alpha_is_binary_cross_entropy():
    logits = torch.tensor([[0.3, -2.0], [1.5, 0.1]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    torch.testing.assert_close(focal_loss(logits, targets, alpha=-1, gamma=0.0), bce)


def test_easy_negatives_are_down_weighted():
    # A confident negative (p = 0.01) loses (1 − p_t)^2 = 1e-4 of its cross-entropy, a hard one (p = 0.9) 0.81.
    easy = float(focal_loss(torch.tensor([[math.log(0.01 / 0.99)]]), torch.zeros(1, 1)))
    hard = float(focal_loss(torch.tensor([[math.log(0.9 / 0.1)]]), torch.zeros(1, 1)))
    assert math.isclose(easy, 0.75 * 0.01**2 * -math.log(0.99), rel_tol=1e-5)
    assert math.isclose(hard, 0.75 * 0.9**2 * -math.log(0.1), rel_tol=1e-5)


def test_no_entries_give_zero():
    assert float(focal_loss(torch.zeros(0, 5), torch.zeros(0, 5))) == 0.0
