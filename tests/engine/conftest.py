import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _single_thread_torch():
    # The engine tests use tiny tensors: extra intra-op threads only add contention on a
    # small, shared CPU (10x slower steps under load).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
