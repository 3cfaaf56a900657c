"""`detkit make-dataset`: writes the layouts asked for, prints how to train on them, refuses bad input."""

from __future__ import annotations

from pathlib import Path

from detkit.cli import main


def test_writes_one_layout_and_prints_its_training_command(tmp_path: Path, capsys) -> None:
    out = tmp_path / "scenes"
    args = ["layout=coco", f"output={out}", "num_train=3", "num_val=2", "min_side=64", "max_side=96",
            "max_size=48", "tiny_size=6,9"]  # fmt: skip
    assert main(["make-dataset", *args]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["coco"]
    assert len(list((out / "coco" / "train").glob("*.jpg"))) == 3
    assert f"data.train.ann_file={out.resolve()}/coco/annotations/instances_train.json" in printed
    assert "config=EXPERIMENT data=coco" in printed
    # The same folder again would mix two datasets: refused.
    assert main(["make-dataset", *args]) == 2
    assert "already exist" in capsys.readouterr().err


def test_bad_arguments_are_named(tmp_path: Path, capsys) -> None:
    assert main(["make-dataset", "layout=json", f"output={tmp_path}"]) == 2
    assert "layout=json" in capsys.readouterr().err
    assert main(["make-dataset", "num_trains=3", f"output={tmp_path}"]) == 2
    assert "num_trains" in capsys.readouterr().err
    assert main(["make-dataset", "num_train=many", f"output={tmp_path}"]) == 2
    assert "num_train=many" in capsys.readouterr().err
