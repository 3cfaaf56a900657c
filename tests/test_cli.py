"""The ``detkit`` command: dispatch, help, user errors as one line, and tools that stay thin."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from detkit.cli import main
from detkit.commands import COMMANDS

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def test_overview_lists_every_command(capsys) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_command_is_refused_with_the_choices(capsys) -> None:
    assert main(["tran"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'tran'" in err and "train" in err


def test_train_help_lists_experiments_and_groups(capsys) -> None:
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "faster_rcnn_mobilenet_v1_shapes" in out and "model/backbone: " in out


def test_a_config_mistake_is_one_error_line(capsys) -> None:
    assert main(["check", "data.batch_sise=4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'data.batch_sise'") and "data.batch_size" in err


@pytest.mark.parametrize("tool", sorted(p.name for p in TOOLS.glob("*.py")))
def test_each_tool_is_a_thin_call_of_a_command(tool: str) -> None:
    text = (TOOLS / tool).read_text()
    assert sum(1 for line in text.splitlines() if line.strip()) <= 60
    calls = [
        node
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "main"
    ]
    assert len(calls) == 1, "a tool hands its arguments to detkit.cli.main"
    command = calls[0].args[0].elts[0].value
    assert command in COMMANDS
