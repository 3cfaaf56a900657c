"""Adaptive average pooling as matrices (what ONNX gets) equals PyTorch's adaptive pooling."""

import pytest
import torch
import torch.nn.functional as F

from detkit.ops.pool import adaptive_avg_pool2d, averaging_matrix
from tests.export.detectors import needs_onnx


def test_averaging_matrix_by_hand():
    # 5 inputs into 3 bins: [0, 2), [1, 4), [3, 5) (floor(i·5/3) to ceil((i+1)·5/3)).
    expected = torch.tensor([[1 / 2, 1 / 2, 0, 0, 0], [0, 1 / 3, 1 / 3, 1 / 3, 0], [0, 0, 0, 1 / 2, 1 / 2]])
    torch.testing.assert_close(averaging_matrix(5, 3), expected)


@pytest.mark.parametrize("size, grid", [((10, 10), (7, 7)), ((8, 13), (7, 5)), ((4, 4), (2, 2)), ((3, 5), (7, 7))])
def test_matrices_equal_adaptive_pooling(size, grid):
    x = torch.randn(2, 3, *size)
    rows, cols = averaging_matrix(size[0], grid[0]), averaging_matrix(size[1], grid[1])
    torch.testing.assert_close(rows @ x @ cols.t(), F.adaptive_avg_pool2d(x, grid))
    assert torch.equal(adaptive_avg_pool2d(x, grid), F.adaptive_avg_pool2d(x, grid))  # eager: PyTorch's own


@needs_onnx
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_onnx_export_of_a_non_divisible_grid(tmp_path):
    import onnxruntime

    class Pool(torch.nn.Module):
        def forward(self, x):
            return adaptive_avg_pool2d(x, (7, 7))

    x = torch.randn(2, 4, 10, 10)
    path = tmp_path / "pool.onnx"
    torch.onnx.export(
        Pool(), (x,), str(path), dynamo=False, opset_version=17, input_names=["x"], dynamic_axes={"x": {0: "n"}}
    )
    y = torch.randn(3, 4, 10, 10)
    (got,) = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": y.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), F.adaptive_avg_pool2d(y, (7, 7)))
