"""The GPU check: everything the GPU benchmarks measure, in one run of at most ~8 minutes.

    detkit gpu-check output=gpu_check/                   # all four parts
    detkit gpu-check output=gpu_check/ parts=parity,syncs budget_s=300

Parts, in this order (``parts=`` picks some): ``tests`` (``pytest -m gpu`` on the repository's
tests/), ``parity`` (fp32 vs bf16 autocast boxes of each detector family, limit 0.5 px),
``syncs`` (host syncs per training step of each family, counted with
``torch.cuda.set_sync_debug_mode``; target <= 3), ``benchmarks`` (``detkit benchmark`` presets
faster_rcnn and ssd300). Writes ``gpu_check.json`` and ``gpu_check.md`` (card, torch version,
date, every number) into ``output``. A part that would start after ``budget_s`` (480) seconds is
skipped and marked so. Needs a CUDA device. See docs/GPU_CHECK.md.
The check itself is ``detkit.analysis.device.gpu_check``.
"""

from __future__ import annotations

from pathlib import Path

from detkit.analysis.device.gpu_check import DEFAULTS, PARTS, format_markdown, gpu_check
from detkit.engine.config import ConfigError, split_arguments

OWN_KEYS = ("output", "parts", *DEFAULTS)


def run(argv: list[str]) -> int:
    own, rest = split_arguments(argv, OWN_KEYS)
    if rest:
        raise ConfigError(f"gpu-check takes only {', '.join(OWN_KEYS)}; got {' '.join(rest)}")
    parts = [p.strip() for p in own.get("parts", ",".join(PARTS)).split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ConfigError(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    output = Path(own.get("output", "gpu_check"))
    limits = {key: float(own.get(key, default)) for key, default in DEFAULTS.items()}
    report = gpu_check(output, parts=parts, **limits)
    print(format_markdown(report))
    print(f"\nWrote {output / 'gpu_check.json'} and {output / 'gpu_check.md'}")
    return 0
