"""ProblemLog and DataError: one error naming every problem, capped in the message with the full
list in the report file; warnings never raise; a problem's text names file, place and kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detkit.data.validation.problems import MAX_LISTED, DataError, Problem, ProblemLog, problem_report


def test_a_problem_reads_file_place_image_reason_kind() -> None:
    problem = Problem("bad_box_size", "labels/a.txt", "zero or negative size", "line 3", "a.jpg")
    assert str(problem) == "labels/a.txt, line 3 (image a.jpg): zero or negative size [bad_box_size]"
    assert problem.severity == "error" and problem.action == "box dropped"
    assert Problem.from_dict(problem.as_dict()) == problem
    assert Problem("box_partly_outside", "x.json", "r").severity == "warning"
    with pytest.raises(ValueError, match="unknown problem kind 'typo'"):
        Problem("typo", "x", "r")
    with pytest.raises(ValueError, match=r"on_bad_data must be one of \('error', 'skip'\), got 'ignore'"):
        ProblemLog("x", "ignore")


def test_many_errors_are_capped_in_the_message_and_all_written_to_the_report(tmp_path: Path) -> None:
    log = ProblemLog("labels.yaml", "error")
    count = MAX_LISTED + 10
    for line in range(1, count + 1):
        log.add("wrong_field_count", "a.txt", "4 fields", where=f"line {line}")
    log.add("missing_label_file", "b.txt", "no label file")
    report = tmp_path / "run" / "data_problems.jsonl"
    with problem_report(report), pytest.raises(DataError) as error:
        log.apply(kept_images=1, kept_boxes=0)
    message = str(error.value)
    assert message.startswith(
        f"labels.yaml: {count} problem(s) in the data (and 1 warning(s)): {count} wrong_field_count"
    )
    assert f"a.txt, line {MAX_LISTED}: 4 fields" in message and f"a.txt, line {MAX_LISTED + 1}:" not in message
    assert (
        f"... and 10 more (`detkit check` with the same data arguments lists every one; all of them are in {report})"
        in message
    )
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert len(lines) == count + 1 and lines[-1]["kind"] == "missing_label_file" and lines[0]["source"] == "labels.yaml"
    assert len(error.value.problems) == count + 1


def test_warnings_alone_never_raise() -> None:
    log = ProblemLog("x.json", "error")
    log.add("class_without_boxes", "x.json", "class 'a' has no box")
    log.apply(kept_images=3, kept_boxes=0)  # no exception
