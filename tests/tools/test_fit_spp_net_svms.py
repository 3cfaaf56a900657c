"""`detkit fit-svms` on an SPP-net checkpoint: the paper's SVM stage on fc7, as for R-CNN."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.tools.tool_runner import run_tool, tool_env

TINY = [
    "config=spp_net_mobilenet_v1_shapes",
    "data.num_train=8",
    "data.num_val=3",
    "data.image_size=96",
    "data.input_size=96",
    "data.num_workers=0",
    "data.batch_size=4",
    "data.proposals.wrapper.num_workers=0",
    "model.backbone.width_mult=0.25",
    "model.head.representation_size=32",
    "engine.max_iters=3",
    "engine.vis_images=0",
    "scheduler.warmup_iters=1",
]


@pytest.mark.slow  # trains, searches proposals and fits in subprocesses: about a minute on a quiet box
def test_fit_svms_accepts_an_spp_net_checkpoint(tmp_path: Path) -> None:
    env = tool_env(tmp_path)
    run_dir = tmp_path / "run"
    run_tool("train.py", *TINY, f"output_dir={run_dir}", env=env)
    report, output = tmp_path / "svm.json", tmp_path / "svm.pt"
    result = run_tool(
        "fit_rcnn_svms.py", f"checkpoint={run_dir / 'last.pt'}", f"output={output}", f"metrics={report}", env=env
    )
    assert "Fitted 5 SVMs on 8 images" in result.stdout
    fitted = json.loads(report.read_text())
    assert sum(fitted["svm_fit"]["positives"]) > 0 and {"softmax", "svm"} <= set(fitted)
    state = torch.load(output, weights_only=True, map_location="cpu")
    assert "classifier: svm" in state["config_yaml"] and bool(state["model"]["head.svms.fitted"])
    assert state["model"]["head.svms.weight"].shape == (5, 32)  # one hyperplane per class on fc7
