"""How many data-loader worker processes a run starts: ``data.num_workers``.

``auto`` (the recipes' default) sizes the loader to the machine rather than to the machine a
recipe was tuned on: the cores this process may use (its CPU affinity, which containers and
SLURM restrict), shared by the processes torchrun starts on the same machine, one core left to
the process that runs the model, at most ``MAX_AUTO_WORKERS``. A fixed number is used as it is.

A model that trains on the CPU is different: its threads already use every core, and a worker
process takes its share of them. Measured on a 2-core AMD EPYC (faster_rcnn_mobilenet_v1_shapes, batch 8):
loading inline costs 22 ms a batch and the step runs at 35 images/s; one worker needs 56 ms a
batch on the contended cores and slows the step to 26 images/s. So on a CPU a worker is started
only for every four cores (none on 2- and 3-core machines).
"""

from __future__ import annotations

import os

MAX_AUTO_WORKERS = 8  # beyond this, decoding small images outruns any single model step


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity call
        return os.cpu_count() or 1


def local_world_size() -> int:
    """Processes torchrun started on this machine (1 outside torchrun)."""
    return max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)


def auto_workers(cores: int, processes_per_machine: int = 1) -> int:
    """Workers per process on a machine with ``cores`` cores shared by ``processes_per_machine``
    training processes: the process's share minus the core its model runs on, at least one (a
    worker decodes the next batch while the model steps), at most ``MAX_AUTO_WORKERS``."""
    share = cores // max(processes_per_machine, 1)
    return max(1, min(MAX_AUTO_WORKERS, share - 1))


CPU_CORES_PER_WORKER = 4


def auto_cpu_workers(cores: int, processes_per_machine: int = 1) -> int:
    """Workers per process when the model itself runs on the CPU: one per four cores of the
    process's share, at most ``MAX_AUTO_WORKERS``; the rest of the cores run the model's threads."""
    share = cores // max(processes_per_machine, 1)
    return min(MAX_AUTO_WORKERS, share // CPU_CORES_PER_WORKER)


def loader_workers(setting: int | str | None, device_type: str = "cuda") -> int:
    """``data.num_workers`` as a number: ``auto`` (or null) → :func:`auto_workers` for this machine
    (:func:`auto_cpu_workers` when ``device_type`` is ``cpu``: the model shares the cores)."""
    if setting is None or str(setting).lower() == "auto":
        if device_type == "cpu":
            return auto_cpu_workers(available_cores(), local_world_size())
        return auto_workers(available_cores(), local_world_size())
    try:
        workers = int(setting)
    except (TypeError, ValueError):
        raise ValueError(f"data.num_workers must be auto or a non-negative integer, got {setting!r}") from None
    if workers < 0:
        raise ValueError(f"data.num_workers must be auto or a non-negative integer, got {setting!r}")
    return workers
