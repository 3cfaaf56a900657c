"""data.num_workers=auto sizes the loader to the machine."""

from __future__ import annotations

import pytest

from detkit.engine.workers import MAX_AUTO_WORKERS, auto_cpu_workers, auto_workers, loader_workers


def test_auto_workers_leave_a_core_to_the_model_and_share_among_local_processes() -> None:
    assert auto_workers(2) == 1
    assert auto_workers(1) == 1          # one worker still overlaps decoding with the step
    assert auto_workers(16) == MAX_AUTO_WORKERS
    assert auto_workers(64, processes_per_machine=8) == 7
    assert auto_workers(16, processes_per_machine=8) == 1


def test_loader_workers_reads_auto_numbers_and_refuses_nonsense(monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr("detkit.engine.workers.available_cores", lambda: 12)
    assert loader_workers("auto") == 5 and loader_workers(None) == 5
    assert loader_workers(3) == 3 and loader_workers("0") == 0
    for bad in (-1, "many"):
        with pytest.raises(ValueError, match="data.num_workers"):
            loader_workers(bad)


def test_a_model_on_the_cpu_keeps_the_cores_of_small_machines_to_itself(monkeypatch) -> None:
    # On a CPU the model's threads use every core: a worker only pays from four cores on.
    assert auto_cpu_workers(2) == 0 and auto_cpu_workers(3) == 0
    assert auto_cpu_workers(4) == 1 and auto_cpu_workers(8) == 2
    assert auto_cpu_workers(64) == MAX_AUTO_WORKERS
    assert auto_cpu_workers(16, processes_per_machine=4) == 1
    monkeypatch.setattr("detkit.engine.workers.available_cores", lambda: 2)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_workers("auto", "cpu") == 0 and loader_workers("auto", "cuda") == 1
    assert loader_workers(2, "cpu") == 2      # a number is used as it is
