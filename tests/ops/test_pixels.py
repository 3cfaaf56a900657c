"""uint8 pixels become exactly the floats the loader used to compute in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from detkit.ops.pixels import common_dtype, to_unit_float


def test_every_uint8_value_matches_the_numpy_float32_scaling() -> None:
    values = np.arange(256, dtype=np.uint8)
    # What detkit.data.base.image_to_tensor computed before images travelled as uint8.
    expected = values.astype(np.float32) * np.float32(1.0 / 255.0)
    got = to_unit_float(torch.from_numpy(values))
    assert got.dtype == torch.float32 and np.array_equal(got.numpy(), expected)
    assert got[0] == 0 and got[-1] == 1


def test_floats_pass_unchanged_and_other_types_are_refused() -> None:
    image = torch.rand(3, 4, 4)
    assert to_unit_float(image) is image
    with pytest.raises(TypeError, match="int64"):
        to_unit_float(torch.zeros(3, 2, 2, dtype=torch.int64))


def test_common_dtype() -> None:
    pixels = torch.zeros(3, 2, 2, dtype=torch.uint8)
    assert common_dtype([pixels, pixels]) == torch.uint8
    assert common_dtype([pixels, pixels.float()]) == torch.float32
