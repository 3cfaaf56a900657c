"""One torch CPU thread for the tests of small models (a fixture body shared by the folders that use it)."""

import torch


def one_torch_thread():
    # Tiny tensors on a small, shared CPU: extra intra-op threads only add contention (measured:
    # engine steps 10x slower and an SSD forward pass at 128 px 3x slower with 2 threads under load).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
