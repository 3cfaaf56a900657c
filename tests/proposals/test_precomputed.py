"""PrecomputedProposals: the proposal generator that reads target["proposals"]."""

from __future__ import annotations

import pytest
import torch

from detkit.proposals.precomputed import PrecomputedProposals, needs_precomputed_proposals


def _target(proposals, image_id: int = 7) -> dict:
    return {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.long), "image_id": image_id,
            "proposals": torch.tensor(proposals, dtype=torch.float32).reshape(-1, 4)}  # fmt: skip


def test_clips_drops_small_and_caps_in_rank_order() -> None:
    generator = PrecomputedProposals(max_proposals_train=2, max_proposals_test=3, min_size=2.0)
    image_sizes = torch.tensor([[20, 30], [10, 10]])
    targets = [
        _target([[-5, -5, 10, 10], [0, 0, 1, 5], [25, 2, 40, 30], [1, 1, 4, 4], [float("nan"), 0, 3, 3]]),
        _target([]),
    ]
    generator.eval()
    proposals, losses = generator(None, image_sizes, targets)
    assert losses == {}
    # Clipped to 30 x 20 (w x h); the 1-pixel-wide box is dropped, NaN rows too; first 3 kept.
    expected = torch.tensor([[0, 0, 10, 10], [25, 2, 30, 20], [1, 1, 4, 4]], dtype=torch.float32)
    assert torch.equal(proposals[0], expected)
    assert proposals[1].shape == (0, 4)
    generator.train()
    proposals, _ = generator(torch.zeros(2, 8, 2, 2), image_sizes, targets)
    assert torch.equal(proposals[0], expected[:2])


def test_padded_keeps_exactly_what_forward_keeps() -> None:
    """The exported graphs' form: one [N, P, 4] tensor with counts. Same hand-made case as above,
    plus rows past each image's count that would otherwise be kept."""
    generator = PrecomputedProposals(max_proposals_train=2, max_proposals_test=3, min_size=2.0).eval()
    image_sizes = torch.tensor([[20, 30], [10, 10]])
    rows = [[-5, -5, 10, 10], [0, 0, 1, 5], [25, 2, 40, 30], [1, 1, 4, 4], [float("nan"), 0, 3, 3], [2, 2, 9, 9]]
    proposals = torch.tensor([rows, [[1, 1, 5, 5]] * 6], dtype=torch.float32)
    boxes, valid = generator.padded(proposals, torch.tensor([5, 0]), image_sizes)
    expected = torch.tensor([[0, 0, 10, 10], [25, 2, 30, 20], [1, 1, 4, 4]], dtype=torch.float32)
    assert valid.tolist() == [[True, False, True, True, False, False], [False] * 6]
    assert torch.equal(boxes[0][valid[0]], expected)
    assert torch.isfinite(boxes).all()  # NaN rows become zeros: RoI ops on the padding stay finite
    generator.train()
    _, valid = generator.padded(proposals, torch.tensor([6, 6]), image_sizes)
    assert valid.sum(dim=1).tolist() == [2, 2]


def test_missing_proposals_are_explained() -> None:
    generator = PrecomputedProposals()
    with pytest.raises(ValueError, match="WithProposals"):
        generator(None, torch.tensor([[8, 8]]), None)
    target = _target([])
    del target["proposals"]
    with pytest.raises(ValueError, match="image_id 7.*no 'proposals'"):
        generator(None, torch.tensor([[8, 8]]), [target])
    with pytest.raises(ValueError, match=r"Tensor\[P, 4\]"):
        generator(None, torch.tensor([[8, 8]]), [dict(_target([]), proposals=torch.zeros(3, 5))])


def test_needs_precomputed_proposals() -> None:
    assert needs_precomputed_proposals(torch.nn.Sequential(torch.nn.Linear(2, 2), PrecomputedProposals()))
    assert not needs_precomputed_proposals(torch.nn.Sequential(torch.nn.Linear(2, 2)))
