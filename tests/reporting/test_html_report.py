"""report.html and ``detkit report``: the page of one evaluation folder, rebuilt; two
evaluations compared."""

from __future__ import annotations

import json
import re

import pytest

from detkit.cli import main
from detkit.reporting.report import evaluate_with_report

A = [0, 0, 100, 100]
B = [200, 200, 300, 300]


@pytest.fixture
def two_runs(make_gt, make_dets, tmp_path):
    """Report folders of two evaluations of the same ground truth: A finds the cat and mislabels
    the dog's box; B finds both."""
    gt = make_gt([(1, 1, A), (1, 2, B)], names=("cat", "dog"))
    first = make_dets([(1, 1, A, 0.9), (1, 1, B, 0.8)])
    second = make_dets([(1, 1, A, 0.9), (1, 2, B, 0.8)])
    evaluate_with_report(gt, first, tmp_path / "a")
    evaluate_with_report(gt, second, tmp_path / "b")
    return tmp_path / "a", tmp_path / "b"


def rows_of(page: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def test_evaluation_writes_report_html_and_the_command_rebuilds_it(two_runs, capsys):
    folder, _ = two_runs
    page = (folder / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # offline: nothing fetched
    for name in ("pr_curves.png", "confusion_matrix.png", "errors.png"):
        assert f'src="{name}"' in page
    assert rows_of(page, "per-class")[1][:3] == ["dog", "0.000", "0.000"]
    (folder / "report.html").unlink()
    assert main(["report", f"run={folder}"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (folder / "report.html").read_text() == page


def test_comparison_shows_deltas(two_runs, tmp_path):
    first, second = two_runs
    output = tmp_path / "compare.html"
    assert main(["report", f"run={first},{second}", f"output={output}"]) == 0
    page = output.read_text()
    summary = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", page)]
    voc12 = next(row for row in summary if row and row[0] == "VOC12 mAP")
    assert voc12 == ["VOC12 mAP", "0.500", "1.000", "+0.500"]
    dog = next(row for row in rows_of(page, "per-class") if row[0] == "dog")
    assert dog[7:10] == ["0.000", "1.000", "+1.000"]  # VOC12 A, B, B - A
    classification = next(row for row in rows_of(page, "errors") if row[0] == "classification")
    assert classification == ["classification", "50.00", "0.00", "-50.00", "1", "0", "-1"]
    assert 'src="a/errors.png"' in page and 'src="b/errors.png"' in page
    assert "did not see the same validation data" not in page


def test_comparison_warns_about_different_data(two_runs, make_gt, make_dets, tmp_path):
    first, _ = two_runs
    other = make_gt([(1, 1, A)], names=("cat", "dog"))
    evaluate_with_report(other, make_dets([(1, 1, A, 0.9)]), tmp_path / "c")
    assert main(["report", f"run={first},{tmp_path / 'c'}"]) == 0
    assert "did not see the same validation data" in (first / "compare_c.html").read_text()


def test_older_folder_without_breakdown_says_so(two_runs):
    folder, _ = two_runs
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["errors"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "errors.json").unlink()
    assert main(["report", f"run={folder}"]) == 0
    assert "No error breakdown in this folder" in (folder / "report.html").read_text()


def test_bad_folders_are_named(tmp_path, capsys):
    assert main(["report", f"run={tmp_path / 'absent'}"]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert main(["report", f"run={tmp_path}"]) == 2
    assert f"no metrics.json in {tmp_path}" in capsys.readouterr().err
    (tmp_path / "metrics.json").write_text("{not json")
    assert main(["report", f"run={tmp_path}"]) == 2
    assert "metrics.json: not valid JSON" in capsys.readouterr().err
    assert main(["report"]) == 2
