"""The error breakdown in the evaluation report and the console table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detkit.evaluation.errors import CAUSES, error_breakdown
from detkit.reporting.error_report import format_errors_markdown, plot_error_breakdown
from detkit.reporting.report import evaluate_with_report, format_metrics_table

A = [0, 0, 100, 100]
B = [200, 200, 300, 300]


@pytest.fixture
def pair(make_gt, make_dets):
    # a classification error on the cat (A), a true positive and a background error for dog
    gt = make_gt([(1, 1, A), (1, 2, B)], names=("cat", "dog"))
    dets = make_dets([(1, 2, A, 0.9), (1, 2, B, 0.8), (1, 2, [400, 400, 420, 420], 0.7)])
    return gt, dets


def test_markdown_rows_hold_counts_and_points(pair):
    errors = error_breakdown(*pair)
    text = format_errors_markdown(errors)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    # classification: cat 0 -> 1, dog 0.5 -> 1 (its remaining FP at 0.7 ranks after full recall)
    assert rows["classification"] == "| classification | 1 | 75.00 | 0 | 0 | 1 |"
    assert rows["background"].startswith("| background | 1 |") and rows["background"].endswith(
        "| 1 | 0 | 0 |"
    )
    assert rows["cat"].startswith("| cat | 0.00 | 100.00 |")


def test_chart_draws_the_numbers_of_the_breakdown(pair, tmp_path):
    errors = error_breakdown(*pair)
    drawn = plot_error_breakdown(errors, tmp_path / "errors.png")
    assert (tmp_path / "errors.png").stat().st_size > 1000
    np.testing.assert_allclose(drawn["dAP"], [100 * errors["dAP"][c] for c in CAUSES])
    np.testing.assert_array_equal(drawn["false_positives"], [1, 0, 1])  # 400 px² background, 10000 px² on A
    np.testing.assert_array_equal(drawn["false_negatives"], [0, 0, 1])


def test_results_file_evaluation_writes_the_breakdown(pair, tmp_path):
    gt, dets = pair
    metrics = evaluate_with_report(gt, dets, tmp_path / "report")
    assert metrics["errors"]["counts"]["classification"] == 1
    saved = json.loads((tmp_path / "report" / "errors.json").read_text())
    assert saved["dAP"] == pytest.approx(metrics["errors"]["dAP"])
    assert (tmp_path / "report" / "errors.md").read_text().startswith("# Error breakdown (TIDE)")
    assert "Errors (TIDE), AP points gained when fixed: classification" in format_metrics_table(metrics)


def test_eval_command_puts_the_breakdown_in_metrics_json(pair, tmp_path):
    from detkit.cli import main

    gt, dets = pair
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dets))
    output = tmp_path / "metrics.json"
    assert (
        main(
            [
                "eval",
                f"ground_truth={tmp_path / 'gt.json'}",
                f"detections={tmp_path / 'dt.json'}",
                f"output={output}",
            ]
        )
        == 0
    )
    errors = json.loads(output.read_text())["errors"]
    assert errors["counts"]["background"] == 1 and errors["counts"]["missed"] == 0
    assert (tmp_path / "metrics_report" / "errors.png").is_file()
