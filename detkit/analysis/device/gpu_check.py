"""The GPU check behind ``detkit gpu-check``: every GPU measurement in one run of at most ~8 minutes,
written as ``gpu_check.json`` and ``gpu_check.md``.

Parts, in this order: ``tests`` (``pytest -m gpu`` on the checkout's tests/, in a child process;
skipped for an installed package without them), ``parity`` (fp32 vs bf16 autocast boxes of each
detector family), ``syncs`` (host syncs per training step of each family), ``benchmarks``
(``detkit benchmark`` presets in child processes). See docs/GPU_CHECK.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from detkit.analysis.device import detector_checks as device_checks
from detkit.engine.config import ConfigError

PARTS = ("tests", "parity", "syncs", "benchmarks")
PRESETS = ("faster_rcnn", "ssd300")
SYNC_TARGET = 3
# The time limits, in seconds, when the command line does not set them.
DEFAULTS = {"budget_s": 480.0, "tests_timeout_s": 180.0, "benchmark_timeout_s": 150.0}


def gpu_check(
    output: Path,
    *,
    parts=PARTS,
    budget_s: float = DEFAULTS["budget_s"],
    tests_timeout_s: float = DEFAULTS["tests_timeout_s"],
    benchmark_timeout_s: float = DEFAULTS["benchmark_timeout_s"],
) -> dict:
    """Run the chosen ``parts`` on the first CUDA device; write and return the report."""
    import torch
    import torchvision

    if not torch.cuda.is_available():
        raise ConfigError("gpu-check needs a CUDA device and torch.cuda.is_available() is False on this machine")
    device = torch.device("cuda")
    output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    report: dict = {
        "card": torch.cuda.get_device_name(device),
        "capability": ".".join(map(str, torch.cuda.get_device_capability(device))),
        "bf16": torch.cuda.is_bf16_supported(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "budget_s": budget_s,
    }
    steps = {
        "tests": lambda: run_gpu_tests(output, tests_timeout_s),
        "parity": lambda: device_checks.run_families(device_checks.parity, device),
        "syncs": lambda: device_checks.run_families(device_checks.training_syncs, device),
        "benchmarks": lambda: {preset: run_benchmark(preset, output, benchmark_timeout_s) for preset in PRESETS},
    }
    for part in PARTS:
        if part not in parts:
            continue
        elapsed = time.perf_counter() - start
        if elapsed > budget_s:
            report[part] = {"skipped": f"time budget of {budget_s:.0f} s spent ({elapsed:.0f} s)"}
            continue
        part_start = time.perf_counter()
        report[part] = steps[part]()
        report.setdefault("seconds", {})[part] = round(time.perf_counter() - part_start, 1)
        _write(report, output)  # after every part: a later hang still leaves the numbers so far
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    _write(report, output)
    return report


def _write(report: dict, output: Path) -> None:
    (output / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (output / "gpu_check.md").write_text(format_markdown(report) + "\n")


def _child_env() -> dict[str, str]:
    """This process's environment with detkit's folder first on PYTHONPATH, so that the child
    processes import the same detkit (a checkout run with PYTHONPATH, or an installed one)."""
    package_parent = str(Path(__file__).resolve().parents[3])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def repository_root() -> Path | None:
    """The checkout holding detkit's tests/ (None for an installed package without them)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "tests").is_dir() else None


def run_gpu_tests(output: Path, timeout_s: float) -> dict:
    """``pytest -m gpu`` on the repository's tests, in a child process; its summary counts."""
    root = repository_root()
    if root is None:
        return {"skipped": "no tests/ folder beside the detkit package (run from a checkout)"}
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"]
    try:
        done = subprocess.run(command, cwd=root, env=_child_env(), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        text = (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        (output / "gpu_tests.log").write_text(text)
        return {"error": f"timed out after {timeout_s:.0f} s", "log": "gpu_tests.log"}
    (output / "gpu_tests.log").write_text(done.stdout + done.stderr)
    return {"returncode": done.returncode, "counts": pytest_counts(done.stdout), "log": "gpu_tests.log"}


def pytest_counts(text: str) -> dict[str, int]:
    """The counts of pytest's last summary line (``3 passed, 1 skipped, 90 deselected in 4.2s``)."""
    lines = [
        line for line in text.strip().splitlines() if re.search(r"\d+ (passed|failed|skipped|error|deselected)", line)
    ]
    if not lines:
        return {}
    counts = {}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)", lines[-1]):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def run_benchmark(preset: str, output: Path, timeout_s: float) -> dict:
    """``detkit benchmark preset=PRESET device=cuda`` in a child process; its JSON report."""
    path = output / f"benchmark_{preset}.json"
    command = [sys.executable, "-m", "detkit.cli", "benchmark", f"preset={preset}", "device=cuda", f"output={path}"]
    try:
        done = subprocess.run(command, env=_child_env(), capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if done.returncode != 0 or not path.is_file():
        return {"error": f"exit code {done.returncode}: {(done.stderr or done.stdout)[-1500:]}"}
    return json.loads(path.read_text())


def format_markdown(report: dict) -> str:
    """The report as the markdown summary (also what docs/BENCHMARKS.md's GPU table takes)."""
    lines = [
        f"# GPU check: {report.get('card', '?')}",
        "",
        f"{report.get('date', '?')}; torch {report.get('torch', '?')}, torchvision {report.get('torchvision', '?')}, "
        f"CUDA {report.get('cuda', '?')}, compute capability {report.get('capability', '?')}, "
        f"bf16 {report.get('bf16', '?')}; "
        f"{report.get('total_seconds', '?')} s in all.",
    ]
    tests = report.get("tests")
    if tests is not None:
        counts = ", ".join(f"{n} {k}" for k, n in tests.get("counts", {}).items())
        lines += ["", "## GPU tests (pytest -m gpu)", "",
                  _status(tests) or f"{counts} (exit code {tests['returncode']})"]  # fmt: skip
    if "parity" in report:
        lines += ["", "## AMP vs fp32 boxes (limit 0.5 px; corner shift of matched detections)", "",
                  "| family | dtype | matched / compared | max px | p95 px | mean px | ok |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for family, row in _rows(report["parity"]):
            lines.append(_error_row(family, row, 7) or (
                f"| {family} | {row['dtype']} | {row['matched']} / {row['compared']} | {_num(row['max_px'])} | "
                f"{_num(row['p95_px'])} | {_num(row['mean_px'])} | {'yes' if row['ok'] else 'NO'} |"))  # fmt: skip
    if "syncs" in report:
        lines += ["", f"## Host syncs per training step (target <= {SYNC_TARGET})", "",
                  "| family | batch | autocast | syncs / step | where (most) |", "|---|---|---|---|---|"]  # fmt: skip
        for family, row in _rows(report["syncs"]):
            where = "; ".join(f"{loc} x{n}" for loc, n in list(row.get("where", {}).items())[:3])
            lines.append(_error_row(family, row, 5) or (
                f"| {family} | {row['batch_size']} | {row['autocast']} | {_num(row['per_step'])} | "
                f"{where} |"))  # fmt: skip
    if "benchmarks" in report:
        lines += ["", "## Benchmarks (detkit benchmark, detkit / torchvision)", ""]
        for preset, bench in _rows(report["benchmarks"]):
            lines.append(f"- **{preset}**: " + (_status(bench) or ", ".join(
                f"{key} {value:.2f}x" for key, value in bench.get("ratios_detkit_over_peer", {}).items())))  # fmt: skip
            for label, rates in bench.get("results", {}).items() if isinstance(bench, dict) else ():
                medians = ", ".join(f"{k} {v['median']:.1f}" if isinstance(v, dict) else f"{k} {v:.1f}"
                                    for k, v in rates.items() if k.endswith("_per_s"))  # fmt: skip
                lines.append(f"  - {label}: {medians}")
    return "\n".join(lines)


def _rows(section: dict):
    if not isinstance(section, dict) or "skipped" in section:
        return [("(skipped)", section)]
    return list(section.items())


def _status(row: dict) -> str | None:
    for key in ("skipped", "error"):
        if isinstance(row, dict) and key in row:
            return f"{key}: {row[key]}"
    return None


def _error_row(name: str, row: dict, columns: int) -> str | None:
    status = _status(row)
    return f"| {name} | {status} |" + " |" * (columns - 2) if status else None


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"
