"""The conv-BN-activation block: its layers, its output against the same operations written out,
and the flat state-dict names that trained checkpoints rely on."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from detkit.layers.conv_bn_act import ConvBNLeaky, conv_bn_act


def test_layers_and_bias_follow_batch_norm():
    conv, bn, act = conv_bn_act(4, 8, 3)
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.ReLU) and act.inplace
    assert conv.bias is None and conv.padding == (1, 1)
    conv, act = conv_bn_act(4, 8, 3, batch_norm=False, activation=nn.ReLU6)
    assert conv.bias is not None and isinstance(act, nn.ReLU6)
    conv = conv_bn_act(4, 4, 3, dilation=6, groups=4, stride=2)[0]
    assert conv.padding == (6, 6) and conv.dilation == (6, 6) and conv.groups == 4 and conv.stride == (2, 2)


def test_spliced_into_a_sequential_the_names_stay_flat():
    block = nn.Sequential(*conv_bn_act(3, 5, 1), *conv_bn_act(5, 5, 3, batch_norm=False))
    assert sorted(block.state_dict()) == sorted(
        ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
         "3.weight", "3.bias"]
    )


@pytest.mark.parametrize("kernel_size, stride, size", [(1, 1, (9, 7)), (3, 1, (9, 7)), (3, 2, (9, 7))])
def test_conv_bn_leaky_equals_the_operations_written_out(kernel_size, stride, size):
    torch.manual_seed(0)
    block = ConvBNLeaky(3, 6, kernel_size, stride).eval()
    conv, bn = block[0], block[1]
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, *size)
    expected = F.leaky_relu(
        F.batch_norm(
            F.conv2d(x, conv.weight, stride=stride, padding=kernel_size // 2),
            bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps,
        ),
        negative_slope=0.1,
    )
    out = block(x)
    torch.testing.assert_close(out, expected)
    # 'Same' padding: the size divides by the stride, rounded up.
    assert out.shape[-2:] == tuple(-(-s // stride) for s in size)
