"""Counting the host-device synchronisations of a block of code on a CUDA device.

``torch.cuda.set_sync_debug_mode("warn")`` makes torch warn at every operation that makes the
host wait for the GPU (``.item()``, ``.tolist()``, ``nonzero``, boolean indexing, blocking
copies to the host, ``torch.cuda.synchronize``). :func:`count_syncs` switches that mode on for
a block, records the warnings and counts them, with the Python line that triggered each, so
that a report can say where the syncs of a training step are. On a CPU there is nothing to
count: the counter says so (``supported`` False) instead of reporting a misleading zero.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

SYNC_WARNING = "called a synchronizing CUDA operation"


@dataclass
class SyncCount:
    """What :func:`count_syncs` saw: ``total`` syncs, and how many came from each ``file:line``."""

    supported: bool = True
    total: int = 0
    locations: Counter = field(default_factory=Counter)

    def add(self, records: Sequence[warnings.WarningMessage]) -> None:
        """Count the sync warnings among ``records`` (other warnings are ignored)."""
        for record in records:
            if SYNC_WARNING in str(record.message):
                self.total += 1
                self.locations[f"{record.filename}:{record.lineno}"] += 1

    def per(self, steps: int) -> float | None:
        """Syncs per step over ``steps`` steps (None where nothing could be counted)."""
        return self.total / steps if self.supported and steps > 0 else None

    def as_dict(self, steps: int = 1, top: int = 10) -> dict:
        return {
            "supported": self.supported,
            "total": self.total if self.supported else None,
            "per_step": self.per(steps),
            "where": {location: count for location, count in self.locations.most_common(top)},
        }


@contextmanager
def count_syncs(device: torch.device | str) -> Iterator[SyncCount]:
    """Count the synchronising CUDA operations run inside the ``with`` block on ``device``.

    Syncs are counted when the block ends. The debug mode is process-wide: do not run other
    CUDA work in other threads meanwhile."""
    counter = SyncCount(supported=torch.device(device).type == "cuda")
    if not counter.supported:
        yield counter
        return
    previous = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")  # every sync, not the first one per line
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield counter
        finally:
            torch.cuda.set_sync_debug_mode(previous)
            counter.add(records)


def syncs_per_step(step: Callable[[], object], device: torch.device | str, *, warmup: int = 2, steps: int = 3) -> dict:
    """Run ``step`` ``warmup`` times uncounted (cuDNN autotuning and first-use allocations sync
    once per shape), then ``steps`` times counted; the counts as :meth:`SyncCount.as_dict`."""
    for _ in range(warmup):
        step()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)  # the warm-up's work must not be waited for inside the count
    with count_syncs(device) as counter:
        for _ in range(steps):
            step()
    return counter.as_dict(steps)
