"""Code style: ``ruff check`` (the rules of pyproject.toml's [tool.ruff], line length 120 included)
finds nothing in detkit/, tests/ and tools/. ruff is in the dev extras, so CI runs this."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff_command() -> list[str] | None:
    """``python -m ruff`` where the ruff package is installed, else the ``ruff`` on PATH, else None."""
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    executable = shutil.which("ruff")
    return [executable] if executable else None


RUFF = _ruff_command()


@pytest.mark.skipif(RUFF is None, reason="ruff is not installed (it is in the dev extras: pip install -e '.[dev]')")
def test_ruff_check_finds_nothing() -> None:
    assert RUFF is not None
    result = subprocess.run(
        [*RUFF, "check", "--no-cache", "--output-format", "concise", "detkit", "tests", "tools"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"ruff check reports problems:\n{result.stdout}{result.stderr}"
