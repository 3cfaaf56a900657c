import math

import torch

from detkit.coders.delta_xywh import DeltaXYWHCoder


def test_round_trip_with_weights():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(50, 2, generator=g) * 100
    ref = torch.cat((ref, ref + torch.rand(50, 2, generator=g) * 50 + 1), 1)
    tgt = torch.rand(50, 2, generator=g) * 100
    tgt = torch.cat((tgt, tgt + torch.rand(50, 2, generator=g) * 50 + 1), 1)
    coder = DeltaXYWHCoder((10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(coder.decode(coder.encode(ref, tgt), ref), tgt, atol=1e-3, rtol=1e-5)


def test_hand_computed_deltas_and_clamp():
    ref = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    tgt = torch.tensor([[5.0, 0.0, 25.0, 20.0]])  # centre moves 10 px in x, width doubles
    deltas = DeltaXYWHCoder((1.0, 1.0, 1.0, 1.0)).encode(ref, tgt)
    torch.testing.assert_close(deltas, torch.tensor([[1.0, 0.0, math.log(2.0), 0.0]]))
    huge = DeltaXYWHCoder().decode(torch.tensor([[0.0, 0.0, 100.0, 100.0]]), ref)
    assert torch.isfinite(huge).all()
