import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    # Small models on a small, shared CPU: extra intra-op threads only add contention (measured:
    # an SSD forward pass at 128 px takes 3x longer with 2 threads than with 1 under load).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
