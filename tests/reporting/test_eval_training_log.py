"""Reading log.jsonl: series per loss and metric, resumed runs, bad lines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from detkit.reporting.training_log import read_training_log


def _write(path, records, tail: str = ""):
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_series_from_train_and_eval_records(tmp_path):
    # A crashed run logged iterations 10-30; the resumed one restarts after iteration 20, so its
    # 30 supersedes the old 30. loss_box is missing once (NaN, a gap), COCO AP is -1 (undefined).
    path = _write(
        tmp_path / "log.jsonl",
        [
            {"type": "train", "iter": 10, "total_loss": 3.0, "loss_cls": 2.0, "loss_box": 1.0, "lr": 0.1},
            {"type": "train", "iter": 20, "total_loss": 2.0, "loss_cls": 1.5, "lr": 0.1},
            {"type": "eval", "iter": 20, "metrics": {"voc12": {"mAP": 0.3}, "coco": {"AP": -1.0}}},
            {"type": "train", "iter": 30, "total_loss": 9.0, "loss_cls": 9.0, "loss_box": 9.0, "lr": 0.1},
            {"type": "train", "iter": 30, "total_loss": 1.0, "loss_cls": 0.6, "loss_box": 0.4, "lr": 0.05},
            {"type": "eval", "iter": 30, "metrics": {"voc12": {"mAP": 0.5}, "coco": {"AP": 0.2}}},
        ],
    )
    log = read_training_log(path)
    assert list(log.losses) == ["total_loss", "loss_box", "loss_cls"]
    np.testing.assert_array_equal(log.losses["total_loss"].iters, [10, 20, 30])
    np.testing.assert_array_equal(log.losses["total_loss"].values, [3.0, 2.0, 1.0])
    box = log.losses["loss_box"].values
    assert box[0] == 1.0 and math.isnan(box[1]) and box[2] == 0.4
    np.testing.assert_array_equal(log.learning_rate.values, [0.1, 0.1, 0.05])
    assert list(log.validation) == ["VOC12 mAP", "COCO AP"]
    np.testing.assert_array_equal(log.validation["VOC12 mAP"].values, [0.3, 0.5])
    ap = log.validation["COCO AP"].values
    assert math.isnan(ap[0]) and ap[1] == 0.2


def test_truncated_last_line_is_skipped_and_bad_lines_are_named(tmp_path):
    record = {"type": "train", "iter": 10, "total_loss": 1.0}
    log = read_training_log(_write(tmp_path / "cut.jsonl", [record], tail='{"type": "train", "it'))
    assert log.losses["total_loss"].iters.tolist() == [10]
    bad = _write(tmp_path / "bad.jsonl", [record], tail="not json\n" + json.dumps(record) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not a JSON record"):
        read_training_log(bad)
    with pytest.raises(ValueError, match=r"wrong\.jsonl:1: expected an object with type"):
        read_training_log(_write(tmp_path / "wrong.jsonl", [{"iter": 1}]))
    with pytest.raises(ValueError, match="integer 'iter'"):
        read_training_log(_write(tmp_path / "noiter.jsonl", [{"type": "eval", "iter": "5"}]))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        read_training_log(tmp_path / "missing.jsonl")
    assert not read_training_log(_write(tmp_path / "empty.jsonl", []))
