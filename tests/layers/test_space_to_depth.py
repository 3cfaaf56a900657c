"""Space-to-depth (YOLOv2's reorg) against a hand-written loop over pixels."""

import pytest
import torch

from detkit.layers.space_to_depth import SpaceToDepth, space_to_depth


def reorg_loop(x, s):
    n, c, h, w = x.shape
    out = torch.zeros(n, c * s * s, -(-h // s), -(-w // s))
    for channel in range(c):
        for y in range(h):
            for x_ in range(w):
                dy, dx = y % s, x_ % s
                out[:, channel * s * s + dy * s + dx, y // s, x_ // s] = x[:, channel, y, x_]
    return out


@pytest.mark.parametrize("shape, block", [((2, 3, 4, 6), 2), ((1, 2, 6, 6), 3), ((1, 1, 5, 3), 2)])
def test_matches_the_pixel_loop(shape, block):
    x = torch.randn(*shape)
    torch.testing.assert_close(space_to_depth(x, block), reorg_loop(x, block), rtol=0, atol=0)


def test_hand_computed_2x2():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = SpaceToDepth(2)(x)
    assert out.shape == (1, 4, 2, 2)
    # Channel 0 holds the top-left pixel of each 2×2 block, channel 3 the bottom-right.
    torch.testing.assert_close(out[0, 0], torch.tensor([[0.0, 2], [8, 10]]))
    torch.testing.assert_close(out[0, 3], torch.tensor([[5.0, 7], [13, 15]]))
    # Nothing is lost: the values are a permutation of the input.
    assert torch.equal(out.flatten().sort().values, x.flatten())


def test_odd_sides_pad_with_zeros_and_bad_input_is_named():
    out = space_to_depth(torch.ones(1, 1, 3, 3), 2)
    assert out.shape == (1, 4, 2, 2) and float(out.sum()) == 9.0
    with pytest.raises(ValueError, match="Tensor\\[N, C, H, W\\]"):
        space_to_depth(torch.ones(3, 4, 4))
    with pytest.raises(ValueError, match="block_size"):
        space_to_depth(torch.ones(1, 1, 4, 4), 0)
