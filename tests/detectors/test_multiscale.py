"""Multi-scale training: a new size every N batches, boxes scaled with the batch, eval untouched."""

import pytest
import torch

from detkit.detectors.multiscale import MultiScaleTraining


def batch_and_targets():
    batch = torch.rand(2, 3, 96, 64)
    targets = [
        {"boxes": torch.tensor([[8.0, 16, 40, 48]]), "labels": torch.tensor([1]), "image_id": 0},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "image_id": 1},
    ]
    return batch, torch.tensor([[96, 64], [80, 64]]), targets


def test_resizes_batch_boxes_and_sizes_together():
    resize = MultiScaleTraining(sizes=[192], every=3).train()
    batch, sizes, targets = batch_and_targets()
    out, out_sizes, out_targets = resize(batch, sizes, targets)
    # Longer side 96 → 192: both sides double (64 → 128).
    assert out.shape == (2, 3, 192, 128)
    torch.testing.assert_close(out_targets[0]["boxes"], torch.tensor([[16.0, 32, 80, 96]]))
    assert out_targets[1]["boxes"].shape == (0, 4) and out_targets[0]["image_id"] == 0
    torch.testing.assert_close(out_sizes, torch.tensor([[192, 128], [160, 128]]))
    torch.testing.assert_close(out, torch.nn.functional.interpolate(batch, size=(192, 128), mode="bilinear"))


def test_draws_every_n_batches_and_keeps_eval_untouched():
    torch.manual_seed(0)
    resize = MultiScaleTraining(sizes=[64, 128, 192, 256], every=4).train()
    batch, sizes, targets = batch_and_targets()
    drawn = []
    for _ in range(40):
        out, _, _ = resize(batch, sizes, targets)
        drawn.append(out.shape[-2])
    periods = [drawn[i : i + 4] for i in range(0, 40, 4)]
    assert all(len(set(p)) == 1 for p in periods)  # constant within a period
    assert set(drawn) == {64, 128, 192, 256}  # 10 draws from 4 sizes hit each here
    resize.eval()
    out, out_sizes, out_targets = resize(batch, sizes, targets)
    assert out is batch and out_sizes is sizes and out_targets is targets


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="multiples of 32"):
        MultiScaleTraining(sizes=[100])
    with pytest.raises(ValueError, match="every"):
        MultiScaleTraining(sizes=[128], every=0)
