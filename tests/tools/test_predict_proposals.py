"""tools/predict.py and tools/eval.py on a detector that scores precomputed proposals (Fast
R-CNN, with selective search or Edge Boxes): predict must search them itself, move them like the
image, and give the detections the training pipeline's own dataset path gives for the same image;
eval must reproduce the training run's metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.tools.tool_runner import run_tool, tool_env

# The validation image's detections through the training pipeline's dataset path, as JSON.
DATASET_PATH = """
import json, sys
import torch
from detkit.engine.build import build_dataset, build_model, load_config_with_overrides
from detkit.engine.checkpoint import load_model_weights, read_checkpoint
from detkit.structures import boxes_to_original

state = read_checkpoint(sys.argv[1])
cfg = load_config_with_overrides(state["config_yaml"], [])
model = build_model(cfg, num_classes=len(state["class_names"])).eval()
load_model_weights(state, model, use_ema=state.get("ema") is not None)
dataset = build_dataset(cfg, "val", augment=False)
image, target = dataset[0]
with torch.no_grad():
    found = model(image[None], [target])[0]
print(json.dumps({
    "source": str(dataset.dataset.records[0].path),
    "boxes": boxes_to_original(found["boxes"], target).tolist(),
    "scores": found["scores"].tolist(),
    "labels": found["labels"].tolist(),
    "names": state["class_names"],
}))
"""

TINY = [
    "config=fast_rcnn_mobilenet_v1_shapes",
    "data.num_train=8",
    "data.num_val=3",
    "data.image_size=128",
    "data.input_size=128",
    "data.num_workers=0",
    "data.batch_size=4",
    "data.proposals.wrapper.num_workers=0",
    "engine.max_iters=3",
    "engine.vis_images=0",
    "scheduler.warmup_iters=1",
]


# Edge Boxes takes the same path (the method is one more wrapper setting); its run is marked slow
# to keep the default suite's time.
@pytest.mark.parametrize(
    "method", ["selective_search", pytest.param("edge_boxes", marks=pytest.mark.slow)]
)
def test_predict_searches_proposals_and_matches_the_dataset_path(tmp_path: Path, method: str) -> None:
    env = tool_env(tmp_path)
    run_dir = tmp_path / "run"
    run_tool("train.py", *TINY, f"data.proposals.wrapper.method={method}", f"output_dir={run_dir}", env=env)
    assert f"method: {method}" in (run_dir / "config.yaml").read_text()

    # The same validation image through the engine's path (dataset + WithProposals + transform),
    # in a fresh process with the training's environment, as predict runs: nothing an earlier test
    # left in this process (a data cache, thread settings) can make the two paths differ.
    found = subprocess.run(
        [sys.executable, "-c", DATASET_PATH, str(run_dir / "last.pt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert found.returncode == 0, found.stderr[-3000:]
    expected = json.loads(found.stdout.strip().splitlines()[-1])
    expected_boxes = torch.tensor(expected["boxes"]).reshape(-1, 4)
    names = expected["names"]

    folder = tmp_path / "inputs"
    folder.mkdir()
    source = Path(expected["source"])
    (folder / source.name).write_bytes(source.read_bytes())
    out = tmp_path / "pred"
    run_tool("predict.py", f"checkpoint={run_dir / 'last.pt'}", f"input={folder}", f"output={out}", "score=0", env=env)
    detections = json.loads((out / "detections.json").read_text())[source.name]

    assert len(detections) == len(expected_boxes) > 0
    got_scores = [d["score"] for d in detections]
    assert got_scores == pytest.approx(expected["scores"], abs=1e-4)
    assert got_scores == sorted(got_scores, reverse=True)
    # A barely trained model scores near-identical proposals within 1e-6 of each other, so the
    # last bits of a CPU's arithmetic can swap two neighbours: every detection must have its own
    # counterpart (same label, score within 1e-4, box within 0.02 px), in whichever order.
    unmatched = list(range(len(expected_boxes)))
    for detection in detections:
        box = torch.tensor(detection["box"])
        counterpart = next(
            (
                j
                for j in unmatched
                if names[expected["labels"][j] - 1] == detection["label"]
                and abs(expected["scores"][j] - detection["score"]) <= 1e-4
                and torch.allclose(box, expected_boxes[j], atol=0.02)
            ),
            None,
        )
        assert counterpart is not None, (detection, expected_boxes, expected["scores"])
        unmatched.remove(counterpart)

    evaluated = tmp_path / "eval.json"
    run_tool("eval.py", f"checkpoint={run_dir / 'last.pt'}", f"output={evaluated}", env=env)
    trained = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads(evaluated.read_text())["coco"]["AP"] == pytest.approx(trained["coco"]["AP"], abs=1e-6)
