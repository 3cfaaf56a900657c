"""export_checkpoint: a training checkpoint in, an exported file beside it and the check's report out."""

from __future__ import annotations

import json

import pytest
import torch

from detkit.data.synthetic.shapes import SHAPE_CLASSES
from detkit.engine.checkpoint import read_checkpoint
from detkit.export import export_checkpoint, format_report, load_for_export
from tests.export.detectors import save_small_checkpoint


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.load is deprecated; the file is TorchScript
def test_checkpoint_to_torchscript_with_its_own_settings(tmp_path) -> None:
    checkpoint = tmp_path / "best.pt"
    model = save_small_checkpoint("yolov1", checkpoint)
    report = export_checkpoint(checkpoint, "torchscript")
    output = tmp_path / "best.torchscript.pt"
    assert report["output"] == str(output) and report["checkpoint"] == str(checkpoint)
    # The config's input size (the shapes' 160 px) and the head's own cap; samples from its validation split.
    assert report["input_size"] == 160 and report["max_detections"] == model.head.max_detections
    assert report["class_names"] == list(SHAPE_CLASSES)
    assert report["check"]["passed"] and report["check"]["images"] == 3, report["check"]
    assert report["samples"] == "validation images of the checkpoint's data"
    extra = {"detkit.json": ""}
    torch.jit.load(str(output), _extra_files=extra)
    assert json.loads(extra["detkit.json"])["class_names"] == list(SHAPE_CLASSES)
    text = format_report(report)
    assert "best.torchscript.pt" in text and "PASSED" in text and "images float32 [B, 3, 160, 160]" in text


def test_loading_is_strict(tmp_path) -> None:
    checkpoint = tmp_path / "best.pt"
    save_small_checkpoint("yolov1", checkpoint)
    model, cfg, names = load_for_export(checkpoint)
    assert not model.training and names == list(SHAPE_CLASSES) and cfg.data.input_size == 160
    state = read_checkpoint(checkpoint)
    removed = next(iter(state["model"]))
    del state["model"][removed]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match=f"does not match the model:\n  missing from checkpoint \\(1\\): {removed}"):
        load_for_export(tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="would overwrite the checkpoint"):
        export_checkpoint(checkpoint, "onnx", output=checkpoint)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        export_checkpoint(tmp_path / "missing.pt", "onnx")


def test_overrides_are_fixed_in_the_graph(tmp_path) -> None:
    checkpoint = tmp_path / "best.pt"
    save_small_checkpoint("yolov1", checkpoint)
    report = export_checkpoint(
        checkpoint, "torchscript", input_size=128, max_detections=7, overrides=["model.head.score_threshold=1.0"]
    )
    assert report["max_detections"] == 7 and report["check"]["passed"]
    assert report["check"]["counts_exported"] == [0, 0, 0]  # nothing scores above 1
    assert "only empty outputs were compared" in format_report(report)
