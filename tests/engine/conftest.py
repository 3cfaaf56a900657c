import pytest

from tests.torch_threads import one_torch_thread

_single_thread_torch = pytest.fixture(autouse=True, scope="session")(one_torch_thread)
