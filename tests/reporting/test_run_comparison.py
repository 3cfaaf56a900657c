"""compare-runs: iterations to a threshold and the curves, from hand-written log.jsonl files."""

from __future__ import annotations

import json
import math

import pytest

from detkit.cli import main
from detkit.reporting.run_comparison import compare_runs, first_iteration_reaching


def _run(folder, evaluations):
    folder.mkdir()
    lines = [{"type": "train", "iter": 10, "epoch": 0, "time": 1.0, "total_loss": 2.0}]
    lines += [{"type": "eval", "iter": it, "epoch": 0, "time": 1.0, "metrics": {"voc12": {"mAP": v}}}
              for it, v in evaluations]
    (folder / "log.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return folder


def test_first_iteration_reaching_skips_nan_and_may_never_reach() -> None:
    assert first_iteration_reaching([50, 100, 150], [0.4, math.nan, 0.71], 0.7) == 150
    assert first_iteration_reaching([50, 100], [0.7, 0.9], 0.7) == 50   # reaching means >=
    assert first_iteration_reaching([50, 100], [0.2, 0.3], 0.7) is None


def test_compare_runs_rows_and_picture(tmp_path, capsys) -> None:
    tuned = _run(tmp_path / "tuned", [(100, 0.55), (200, 0.74), (300, 0.80)])
    scratch = _run(tmp_path / "scratch", [(100, 0.05), (200, 0.31), (300, 0.52)])
    rows = compare_runs([tuned, scratch], ["fine-tuned", "scratch"], threshold=0.7, plot_path=tmp_path / "c.png")
    assert [(r["label"], r["iters_to_threshold"], r["best"], r["final"]) for r in rows] == [
        ("fine-tuned", 200, 0.80, 0.80), ("scratch", None, 0.52, 0.52)]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["compare-runs", f"runs={tuned},{scratch}", "labels=a,b", f"json={tmp_path / 'c.json'}"]) == 0
    assert "not reached" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())[0]["iters_to_threshold"] == 200


def test_a_run_without_evaluations_is_named(tmp_path) -> None:
    empty = _run(tmp_path / "empty", [])
    with pytest.raises(ValueError, match="empty.*no evaluation"):
        compare_runs([empty], ["x"])
