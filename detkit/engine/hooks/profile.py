"""``engine.profile_steps=N``: where the time of a training step goes, stage by stage.

Steps ``engine.profile_start`` .. ``+ N`` run under a :class:`detkit.utils.stages.StageTimer`; at
the end the hook logs a table of milliseconds per step for every stage (data, forward with its
backbone, neck, proposals, head and assignment, backward, read-back, optimizer) and the share of
the whole step, and writes it as ``step_profile.md`` and ``step_profile.json`` into the run folder.
What no stage covers (the hooks' own work, gradient clipping) is the ``other`` row. Wall-clock
times of a real run, so they include whatever else the machine was doing.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path
from typing import Any, ClassVar

from detkit.engine.dist import is_main_process
from detkit.engine.hooks.base import HookBase
from detkit.utils.stages import StageTimer, cuda_synchronizer

logger = logging.getLogger(__name__)


class StepProfileHook(HookBase):
    # First of the hooks: a step's time ends before the other hooks' after_step (evaluation and
    # checkpoints are not part of a step); the LR hook's before_step (microseconds) lands in "other".
    priority: ClassVar[int] = 5

    def __init__(self, run_dir: Path | None, *, start: int, steps: int) -> None:
        if steps < 1 or start < 0:
            raise ValueError(f"profile steps must be >= 1 and the start >= 0, got {steps} from {start}")
        self.run_dir, self.start, self.steps = run_dir, start, steps
        self.step_seconds: list[float] = []
        self.timer: StageTimer | None = None
        self.report: dict[str, Any] | None = None
        self._step_start = 0.0

    def _profiling(self) -> bool:
        return self.start <= self.trainer.iter < self.start + self.steps

    def before_step(self) -> None:
        if not self._profiling():
            return
        if self.timer is None:
            self.timer = StageTimer(cuda_synchronizer(self.trainer.device)).__enter__()
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        if self.timer is None or self.report is not None:
            return
        self.step_seconds.append(time.perf_counter() - self._step_start)
        if len(self.step_seconds) == self.steps or self.trainer.iters_done == self.trainer.max_iters:
            self._finish()

    def after_train(self) -> None:
        if self.timer is not None and self.report is None and self.step_seconds:
            self._finish()

    def _finish(self) -> None:
        self.timer.__exit__(None, None, None)
        self.report = stage_report(self.timer, self.step_seconds, first_step=self.start)
        text = format_stage_report(self.report)
        logger.info("Where a training step's time goes:\n%s", text)
        if self.run_dir is not None and is_main_process():
            (self.run_dir / "step_profile.json").write_text(json.dumps(self.report, indent=2))
            (self.run_dir / "step_profile.md").write_text(text + "\n")


def stage_report(timer: StageTimer, step_seconds: list[float], *, first_step: int) -> dict[str, Any]:
    """Milliseconds per step of each stage path (and its share of the mean step), over the steps
    timed; ``other``: the step's time outside every top-level stage."""
    steps = len(step_seconds)
    mean_step = sum(step_seconds) / steps
    rows = []
    for path in sorted(timer.seconds, key=_order):
        ms = 1000 * timer.seconds[path] / steps
        rows.append({
            "stage": " / ".join(path),
            "depth": len(path) - 1,
            "ms_per_step": round(ms, 2),
            "share": round(ms / (1000 * mean_step), 4),
            "calls_per_step": timer.calls[path] / steps,
        })  # fmt: skip
    top_level = sum(seconds for path, seconds in timer.seconds.items() if len(path) == 1) / steps
    other_ms = 1000 * (mean_step - top_level)
    rows.append({"stage": "other", "depth": 0, "ms_per_step": round(other_ms, 2),
                 "share": round(other_ms / (1000 * mean_step), 4), "calls_per_step": 1.0})  # fmt: skip
    return {
        "steps": steps,
        "first_step": first_step,
        "step_ms": {"mean": round(1000 * mean_step, 2), "median": round(1000 * statistics.median(step_seconds), 2)},
        "rows": rows,
    }


# The order stages happen in, for reading the table top to bottom.
STAGE_ORDER = ("data", "forward", "preprocess", "backbone", "neck", "proposals", "head", "assign", "backward",
               "read back", "optimizer")  # fmt: skip


def _order(path: tuple[str, ...]) -> tuple:
    return tuple(STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER) for name in path)


def format_stage_report(report: dict[str, Any]) -> str:
    """The report as a Markdown table; a nested stage is named with its path (``forward / head / assign``)."""
    lines = [
        f"{report['steps']} steps from iteration {report['first_step']}: {report['step_ms']['mean']:.1f} ms per step "
        f"(median {report['step_ms']['median']:.1f})",
        "",
        "| stage | ms / step | share of step |",
        "|---|---:|---:|",
    ]
    for row in report["rows"]:
        name = row["stage"]
        lines.append(f"| {name} | {row['ms_per_step']:.1f} | {100 * row['share']:.1f}% |")
    return "\n".join(lines)
