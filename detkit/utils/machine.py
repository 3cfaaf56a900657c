"""What machine a number was measured on: the CPU model (or GPU), cores, threads and load.

A leaf module (standard library and torch only), so that training, evaluation and the speed tools
can all record it without importing one another.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor()
    )


def machine_description(device: torch.device) -> str:
    """The GPU's name, or the CPU model with its cores, torch threads and current load."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    busy = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads{busy}"
