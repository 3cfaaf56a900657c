"""YOLOv4's SPP block (stride-1 max pools of several sizes) and the CSP block."""

import pytest
import torch
from torch import nn

from detkit.layers.csp import CSPBlock
from detkit.layers.spp_block import SPPBlock


def window_max(x, k, y, x_):
    r = k // 2
    return x[..., max(0, y - r) : y + r + 1, max(0, x_ - r) : x_ + r + 1].amax(dim=(-2, -1))


def test_spp_concatenates_window_maxima_largest_first_then_input():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 9)
    block = SPPBlock((3, 5))
    out = block(x)
    assert out.shape == (2, 9, 7, 9) and block.expansion() == 3
    for y, x_ in [(0, 0), (3, 4), (6, 8), (2, 7)]:
        torch.testing.assert_close(out[:, 0:3, y, x_], window_max(x, 5, y, x_))
        torch.testing.assert_close(out[:, 3:6, y, x_], window_max(x, 3, y, x_))
    torch.testing.assert_close(out[:, 6:], x)


def test_spp_rejects_even_pools():
    with pytest.raises(ValueError, match="odd"):
        SPPBlock((4, 9))


def test_csp_block_shapes_and_both_branches_carry_gradient():
    block = CSPBlock(6, 4, nn.Identity())
    x = torch.randn(2, 6, 5, 5, requires_grad=True)
    out = block(x)
    assert out.shape == (2, 4, 5, 5)
    out.sum().backward()
    assert block.split_main[0].weight.grad.abs().sum() > 0 and block.split_skip[0].weight.grad.abs().sum() > 0
    assert block.transition[0].in_channels == 8
