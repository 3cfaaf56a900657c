"""Image sizes carry their host copy, so heads read them without a device sync."""

import torch

from detkit.ops.image_sizes import host_image_sizes, image_sizes_tensor


def test_the_tensor_and_its_host_copy_agree():
    sizes = image_sizes_tensor([(48, 64), (32, 30)], "cpu")
    assert sizes.dtype == torch.long and sizes.tolist() == [[48, 64], [32, 30]]
    assert host_image_sizes(sizes) == [(48, 64), (32, 30)]


def test_a_tensor_built_elsewhere_has_no_host_copy():
    # e.g. inside an exported graph, or a result of arithmetic on the sizes: callers read the tensor.
    assert host_image_sizes(torch.tensor([[48, 64]])) is None
    assert host_image_sizes(image_sizes_tensor([(48, 64)], "cpu") + 0) is None
