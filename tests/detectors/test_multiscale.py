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


def test_scales_follow_the_batch_size():
    # 0.8-1.4 of a 160 px batch are the built-in recipes' former fixed sizes, drawn identically.
    relative = MultiScaleTraining(scales=[0.8, 1.0, 1.2, 1.4], every=2).train()
    fixed = MultiScaleTraining(sizes=[128, 160, 192, 224], every=2).train()
    assert relative.candidate_sizes(160) == fixed.sizes
    # A dataset whose recipe chose 320 px draws around 320, not the built-in data's 160.
    assert relative.candidate_sizes(320) == (256, 320, 384, 448)
    # Rounded to the divisor, repeats merged, never below it.
    assert MultiScaleTraining(scales=[0.1, 0.9, 1.0, 1.05]).candidate_sizes(100) == (32, 96)
    batch, sizes, targets = torch.rand(1, 3, 160, 160), torch.tensor([[160, 120]]), [
        {"boxes": torch.tensor([[10.0, 20, 50, 60]]), "labels": torch.tensor([1]), "image_id": 0}
    ]
    seen = []
    for module in (relative, fixed):
        torch.manual_seed(3)
        seen.append([module(batch, sizes, targets)[0].shape[-1] for _ in range(20)])
    assert seen[0] == seen[1] and len(set(seen[0])) > 1


def test_given_sizes_win_over_scales_and_bad_scales_are_named():
    assert MultiScaleTraining(sizes=[64, 96], scales=[0.5, 1.0]).candidate_sizes(320) == (64, 96)
    with pytest.raises(ValueError, match="sizes .* or scales"):
        MultiScaleTraining()
    with pytest.raises(ValueError, match="scales must be positive"):
        MultiScaleTraining(scales=[1.0, 0.0])
