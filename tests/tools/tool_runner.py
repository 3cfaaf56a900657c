"""Running a tool of tools/ as a user does: a fresh interpreter, caches inside the test's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tool_env(root: Path) -> dict[str, str]:
    """The environment with the shapes data and the proposal cache under ``root``."""
    return {**os.environ, "DETKIT_CACHE": str(root / "cache"), "DETKIT_PROPOSAL_CACHE": str(root / "proposals")}


def run_tool(
    tool: str, *args: str, env: dict[str, str], cwd: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """``python tools/<tool> args...``; with ``check`` a non-zero exit fails with the tool's output."""
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / tool), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{tool} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
