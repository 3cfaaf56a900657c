"""tools/fit_rcnn_svms.py as a user runs it: a trained R-CNN in, a checkpoint scoring with SVMs
out, which tools/eval.py evaluates to the numbers the fit reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.tools.tool_runner import run_tool, tool_env

TINY = [
    "config=rcnn_mobilenet_v1_shapes",
    "data.num_train=8",
    "data.num_val=3",
    "data.image_size=96",
    "data.input_size=96",
    "data.num_workers=0",
    "data.batch_size=4",
    "data.proposals.wrapper.num_workers=0",
    "model.crop_size=32",
    "model.context_padding=4",
    "model.backbone.width_mult=0.25",
    "engine.max_iters=3",
    "engine.vis_images=0",
    "scheduler.warmup_iters=1",
]


def test_fit_writes_an_svm_checkpoint_that_eval_reproduces(tmp_path: Path) -> None:
    env = tool_env(tmp_path)
    run_dir = tmp_path / "run"
    run_tool("train.py", *TINY, f"output_dir={run_dir}", env=env)

    report = tmp_path / "svm.json"
    output = tmp_path / "svm.pt"
    result = run_tool(
        "fit_rcnn_svms.py", f"checkpoint={run_dir / 'last.pt'}", f"output={output}", f"metrics={report}", env=env
    )
    assert "Fitted 5 SVMs on 8 images" in result.stdout and "svm classifier" in result.stdout
    fitted = json.loads(report.read_text())
    assert fitted["svm_fit"]["images"] == 8 and sum(fitted["svm_fit"]["positives"]) > 0
    assert {"softmax", "svm"} <= set(fitted)

    state = torch.load(output, weights_only=True, map_location="cpu")
    assert "classifier: svm" in state["config_yaml"] and bool(state["model"]["head.svms.fitted"])
    evaluated = tmp_path / "eval.json"
    run_tool("eval.py", f"checkpoint={output}", f"output={evaluated}", env=env)
    assert json.loads(evaluated.read_text())["coco"]["AP"] == pytest.approx(fitted["svm"]["coco"]["AP"], abs=1e-6)

    # A detector of another kind is refused with its name, not a traceback.
    faster = tmp_path / "faster"
    run_tool("train.py", "data.num_train=8", "data.num_val=3", "data.image_size=96", "data.input_size=96",
             "data.num_workers=0", "engine.max_iters=1", "engine.vis_images=0", f"output_dir={faster}", env=env)
    refused = run_tool("fit_rcnn_svms.py", f"checkpoint={faster / 'last.pt'}", env=env, check=False)
    assert refused.returncode == 2 and "not an R-CNN checkpoint" in refused.stderr
