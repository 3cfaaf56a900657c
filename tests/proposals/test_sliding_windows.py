"""The sliding-window grid: counts and positions by hand, training windows, the generator contract."""

from __future__ import annotations

import pytest
import torch

from detkit.proposals.sliding_windows import SlidingWindows, count_windows, jitter_boxes, window_grid


def test_counts_by_hand() -> None:
    # Square 32 px windows every 16 px over 160 px: floor(128 / 16) + 1 = 9 per axis.
    assert count_windows(160, 160, sizes=[32], aspect_ratios=[1.0], stride_fraction=0.5) == 81
    # Ratio 4 (height / width): 16 wide, 64 high, still every 16 px: 10 columns x 7 rows.
    assert count_windows(160, 160, sizes=[32], aspect_ratios=[4.0], stride_fraction=0.5) == 70
    # A window larger than the image is not placed.
    assert count_windows(40, 200, sizes=[50], aspect_ratios=[1.0], stride_fraction=0.5) == 0
    assert count_windows(160, 160, sizes=[32], aspect_ratios=[1.0, 4.0], stride_fraction=0.5) == 151


def test_positions_are_centred_and_inside_the_image() -> None:
    # 30 px windows every 10 px in 100 x 50: (100 - 30) / 10 + 1 = 8 columns with no margin left
    # over, (50 - 30) / 10 + 1 = 3 rows.
    grid = window_grid(50, 100, sizes=[30], aspect_ratios=[1.0], stride_fraction=1 / 3)
    assert grid.shape == (24, 4)
    assert sorted(set(grid[:, 0].tolist())) == pytest.approx([0, 10, 20, 30, 40, 50, 60, 70])
    # Stride 20 in 100 px: 4 windows (x1 = 0..60) leave 10 px, split 5 left and 5 right.
    grid = window_grid(30, 100, sizes=[30], aspect_ratios=[1.0], stride_fraction=2 / 3)
    assert grid[:, 0].tolist() == pytest.approx([5, 25, 45, 65])
    assert (grid[:, 2] <= 100).all() and (grid[:, 3] <= 30).all()


@pytest.mark.parametrize("height, width", [(160, 160), (97, 131), (64, 300)])
def test_count_agrees_with_the_grid(height: int, width: int) -> None:
    options = {"sizes": [16, 24, 40, 90], "aspect_ratios": [0.5, 1.0, 2.0], "stride_fraction": 0.3}
    grid = window_grid(height, width, **options)
    assert grid.shape[0] == count_windows(height, width, **options)
    widths, heights = grid[:, 2] - grid[:, 0], grid[:, 3] - grid[:, 1]
    # Equal-area windows: width * height = size^2 for one of the sizes.
    assert all(any(abs(a - s * s) < 1e-3 * s * s for s in options["sizes"]) for a in (widths * heights).tolist())


def test_jitter_keeps_boxes_close() -> None:
    boxes = torch.tensor([[10.0, 20, 50, 40]])
    assert torch.equal(jitter_boxes(boxes, 3, shift=0.0, scale=0.0), boxes.repeat(3, 1))
    jittered = jitter_boxes(boxes, 200, shift=0.1, scale=0.2, generator=torch.Generator().manual_seed(0))
    centres = (jittered[:, :2] + jittered[:, 2:]) / 2
    sizes = jittered[:, 2:] - jittered[:, :2]
    assert ((centres - torch.tensor([30.0, 30])).abs() <= torch.tensor([4.0, 2.0]) + 1e-4).all()
    ratio = sizes / torch.tensor([40.0, 20.0])
    assert (ratio >= torch.exp(torch.tensor(-0.2)) - 1e-5).all() and (
        ratio <= torch.exp(torch.tensor(0.2)) + 1e-5
    ).all()


def test_generator_test_and_training_windows() -> None:
    generator = SlidingWindows(
        sizes=[32], aspect_ratios=[1.0], stride_fraction=0.5, jitter_per_object=4, random_windows_train=10
    )
    sizes = torch.tensor([[160, 160], [96, 160]])
    windows, losses = generator.eval()(None, sizes)
    assert losses == {} and [w.shape[0] for w in windows] == [81, 45]
    assert generator.last_windows_per_image == [81, 45]
    assert generator.windows_per_image(96, 160) == 45
    targets = [{"boxes": torch.tensor([[150.0, 10, 170, 30]]), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    windows, _ = generator.train()(None, sizes, targets)
    assert windows[0].shape[0] <= 14 and windows[1].shape[0] == 10
    assert (windows[0][:, 2] <= 160).all()  # clipped to the image
    with pytest.raises(ValueError, match="targets"):
        generator(None, sizes)


def test_bad_grid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="sizes"):
        SlidingWindows(sizes=[])
    with pytest.raises(ValueError, match="stride_fraction"):
        SlidingWindows(stride_fraction=0)
