"""docs/examples/onnx_inference.py runs an exported ONNX file with onnxruntime in a process that
cannot import detkit (nor torch), on image files of other sizes than the model's input, and
finds what detkit's own pipeline finds (read, letterbox, model, boxes back to stored pixels)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detkit.data.augment.transforms import eval_transforms
from detkit.data.base import image_to_tensor, read_image
from detkit.data.synthetic.shapes_render import ShapesParams, generate_sample
from detkit.export import export_checkpoint
from detkit.structures import boxes_to_original
from tests.export.detectors import INPUT_SIZE, needs_onnx, save_small_checkpoint

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "examples" / "onnx_inference.py"
# Runs the script as __main__ with detkit and torch unimportable, then lists what got imported.
CHILD = """
import importlib.abc, json, runpy, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("detkit", "torch"):
            raise ImportError(f"{name} must not be needed to run an exported ONNX file")

sys.meta_path.insert(0, Refuse())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("detkit", "torch"))
print("IMPORTED " + json.dumps(loaded))
"""


def write_images(folder: Path) -> list[Path]:
    """Two stored images, neither square nor at the input size (one larger, one smaller)."""
    paths = []
    for index, size in enumerate([(100, 150), (150, 96)]):
        sample = generate_sample(ShapesParams(image_size=size, max_size=80), "val", index)
        path = folder / f"image{index}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def detkit_pipeline(model, path: Path, proposals: np.ndarray | None) -> dict[str, np.ndarray]:
    """What tools/predict.py does for one image, in stored-image pixels."""
    image = read_image(path)
    boxes = np.zeros((0, 4), np.float32) if proposals is None else proposals
    letterboxed, moved, _, (sx, sy) = eval_transforms(INPUT_SIZE)(image, boxes, np.arange(len(boxes)))
    targets = None if proposals is None else [{"proposals": torch.as_tensor(np.asarray(moved, np.float32))}]
    with torch.no_grad():
        det = model.eval()(image_to_tensor(letterboxed)[None], targets)[0]
    original = {"scale": torch.tensor([sx, sy]), "orig_size": torch.tensor(image.shape[:2])}
    return {
        "boxes": boxes_to_original(det["boxes"], original).numpy(),
        "scores": det["scores"].numpy(),
        "labels": det["labels"].numpy(),
    }


def by_score(boxes, scores, labels):
    order = np.lexsort([boxes[:, 0], labels, -scores])
    return boxes[order], scores[order], labels[order]


@needs_onnx
@pytest.mark.parametrize("family", ["ssd", "faster_rcnn", "fast_rcnn"])
def test_example_script_without_detkit(family: str, tmp_path) -> None:
    model = save_small_checkpoint(family, tmp_path / "best.pt")
    report = export_checkpoint(tmp_path / "best.pt", "onnx", input_size=INPUT_SIZE)
    assert report["check"]["passed"], report["check"]
    images = write_images(tmp_path)
    command = [sys.executable, "-c", CHILD, str(SCRIPT), report["output"], *map(str, images), "--score", "0"]
    proposals = [None] * len(images)
    if family == "fast_rcnn":
        # Stored-image proposals, as selective search on the image files would give.
        generator = np.random.default_rng(0)
        proposals = []
        for index, path in enumerate(images):
            height, width = read_image(path).shape[:2]
            corner = generator.uniform(0, [width - 20, height - 20], size=(25, 2))
            boxes = np.concatenate((corner, corner + generator.uniform(10, 60, size=(25, 2))), 1)
            proposals.append(np.minimum(boxes, [width, height, width, height]).astype(np.float32))
            np.save(tmp_path / f"proposals{index}.npy", proposals[-1])
        command += ["--proposals", *(str(tmp_path / f"proposals{i}.npy") for i in range(len(images)))]
    # No PYTHONPATH: the child sees neither this checkout nor, through the finder, an installed detkit.
    env = {key: value for key, value in __import__("os").environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    output, _, imported = result.stdout.rpartition("IMPORTED ")
    assert json.loads(imported) == []
    detections = json.loads(output)
    for path, image_proposals in zip(images, proposals, strict=True):
        want = detkit_pipeline(model, path, image_proposals)
        got = detections[str(path)]
        assert len(got) == len(want["scores"]) > 0
        names = np.array(["", *report["class_names"]])
        got_boxes, got_scores, got_labels = by_score(
            np.array([d["box"] for d in got], np.float32),
            np.array([d["score"] for d in got], np.float32),
            np.array([d["label"] for d in got]),
        )
        want_boxes, want_scores, want_labels = by_score(want["boxes"], want["scores"], names[want["labels"]])
        assert np.abs(got_boxes - want_boxes).max() <= 1e-3
        assert np.abs(got_scores - want_scores).max() <= 1e-4
        assert (got_labels == want_labels).all()


def test_markdown_shows_the_tested_script() -> None:
    """docs/EXPORT.md shows this very file, so that what readers copy is what runs here."""
    text = (REPO / "docs" / "EXPORT.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert SCRIPT.read_text() in blocks
