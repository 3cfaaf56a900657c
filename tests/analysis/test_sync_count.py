"""The sync counter: warnings are counted by message and located by line; on a CPU it reports
that it cannot count instead of a zero. The counts themselves need a GPU (tools/gpu_check.py)."""

from __future__ import annotations

import warnings

import pytest
import torch

from detkit.analysis.device.sync_count import SYNC_WARNING, SyncCount, count_syncs, syncs_per_step


def _record(message: str, lineno: int) -> warnings.WarningMessage:
    return warnings.WarningMessage(UserWarning(message), UserWarning, "detkit/heads/rpn.py", lineno)


def test_only_sync_warnings_are_counted_and_located():
    counter = SyncCount()
    counter.add([_record(SYNC_WARNING, 10), _record("something else", 11), _record(SYNC_WARNING, 10),
                 _record(SYNC_WARNING, 42)])  # fmt: skip
    assert counter.total == 3
    assert counter.locations == {"detkit/heads/rpn.py:10": 2, "detkit/heads/rpn.py:42": 1}
    report = counter.as_dict(steps=2)
    assert report["per_step"] == 1.5 and report["where"]["detkit/heads/rpn.py:10"] == 2


def test_on_a_cpu_the_counter_says_it_cannot_count():
    calls = []
    with count_syncs("cpu") as counter:
        torch.ones(3).sum().item()
    assert not counter.supported and counter.per(1) is None
    report = syncs_per_step(lambda: calls.append(1), "cpu", warmup=2, steps=3)
    assert len(calls) == 5 and report == {"supported": False, "total": None, "per_step": None, "where": {}}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_item_and_nonzero_are_counted_on_cuda():
    x = torch.arange(8, device="cuda")
    with count_syncs("cuda") as counter:
        x.sum().item()  # one device-to-host read
        x[x > 3]  # boolean indexing: the result's size is read back
        x + 1  # no sync
    assert counter.total == 2
