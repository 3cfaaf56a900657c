"""Named stages of a training step: where each millisecond of a step goes.

The trainer labels data loading, forward, backward, the read-back of the losses and the optimizer;
detectors label their preprocessing, backbone, neck, proposals and head; heads label target
assignment. ``with stage("assign"): ...`` is, normally, a ``torch.profiler`` range named
``detkit::assign`` (about a microsecond when no profiler runs), so a torch profile shows the stages.
While a :class:`StageTimer` is active it instead adds the block's wall-clock time to that timer,
under its path of enclosing stages (``forward / head / assign``): what ``engine.profile_steps``
reports, without the profiler's cost per operation.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

PREFIX = "detkit::"

_active_timer: StageTimer | None = None


class StageTimer:
    """Wall-clock seconds per stage path while active (``with timer: ...``). ``synchronize`` is
    called at every stage boundary (``torch.cuda.synchronize`` on a GPU, where work is queued and a
    host clock alone would charge it to whichever stage waits for it). A stage nested in another of
    its own name counts once, in the outer one."""

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self.seconds: dict[tuple[str, ...], float] = defaultdict(float)
        self.calls: dict[tuple[str, ...], int] = defaultdict(int)
        self._path: list[str] = []
        self._synchronize = synchronize or (lambda: None)

    def __enter__(self) -> StageTimer:
        global _active_timer
        if _active_timer is not None:
            raise RuntimeError("a StageTimer is already active")
        _active_timer = self
        return self

    def __exit__(self, *exc) -> None:
        global _active_timer
        _active_timer = None

    @contextmanager
    def _time(self, name: str) -> Iterator[None]:
        if name in self._path:  # the outer range of this name already counts this time
            yield
            return
        self._synchronize()
        self._path.append(name)
        path, start = tuple(self._path), time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            self.seconds[path] += time.perf_counter() - start
            self.calls[path] += 1
            self._path.pop()


def stage(name: str):
    """A labelled block: ``with stage("assign"): ...`` (see the module's docstring)."""
    if _active_timer is not None:
        return _active_timer._time(name)
    return torch.profiler.record_function(PREFIX + name)


def cuda_synchronizer(device: torch.device) -> Callable[[], None] | None:
    """What a ``StageTimer`` on ``device`` synchronises with: the GPU's queue, or nothing on a CPU."""
    if device.type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(device)
