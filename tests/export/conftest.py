import pytest

from tests.export.detectors import SMALL_DATA, save_small_checkpoint
from tests.torch_threads import one_torch_thread

_single_thread_torch = pytest.fixture(autouse=True, scope="session")(one_torch_thread)


# The runtime tests' workspace and small random checkpoints, one of each per test module.
@pytest.fixture(scope="module")
def workspace(tmp_path_factory, request):
    """A folder for the checkpoints and a detkit cache of its own (the shapes data, proposals)."""
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETKIT_CACHE", str(root / "cache"))
        yield root


@pytest.fixture(scope="module")
def checkpoint(workspace):
    """``checkpoint(family)``: a small random checkpoint of the family, written once per module."""
    written = {}

    def make(family: str):
        if family not in written:
            written[family] = workspace / family / "best.pt"
            written[family].parent.mkdir()
            save_small_checkpoint(family, written[family], *SMALL_DATA)
        return written[family]

    return make
