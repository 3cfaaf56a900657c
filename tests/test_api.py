"""``detkit.load`` → Predictor: the same detections as evaluation for the same image, every kind of
image input, and strict loading that names a renamed tensor (in the library and in the tools)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import detkit
from detkit.data.collate import collate_detection
from detkit.engine.build import build_dataset
from detkit.engine.config import load_config
from detkit.engine.inference import predict_batches
from detkit.jobs.train_and_evaluate import train
from tests.tools.tool_runner import run_tool, tool_env

TINY = [
    "data.num_train=16",
    "data.num_val=4",
    "data.image_size=[96,128]",  # not square: the letterbox pads, and boxes map back per axis
    "data.input_size=128",
    "data.num_workers=0",
    "data.batch_size=4",
    "engine.max_iters=4",
    "engine.vis_images=0",
    "engine.tensorboard=false",
    "scheduler.warmup_iters=1",
    # A low threshold so that a barely trained model still returns detections to compare.
    "model.roi_head.score_threshold=0.001",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run of the default experiment (R-FCN) and its environment."""
    root = tmp_path_factory.mktemp("api")
    previous = os.environ.get("DETKIT_CACHE")
    os.environ["DETKIT_CACHE"] = str(root / "cache")
    try:
        cfg = load_config([*TINY, f"output_dir={root / 'run'}"])
        train(cfg)
        yield root, cfg
    finally:
        if previous is None:
            del os.environ["DETKIT_CACHE"]
        else:
            os.environ["DETKIT_CACHE"] = previous


def test_training_metrics_and_report_carry_the_error_breakdown(trained) -> None:
    import json

    root, _ = trained
    metrics = json.loads((root / "run" / "metrics.json").read_text())
    errors = metrics["errors"]
    counts = errors["counts"]
    assert counts["true_positives"] + counts["false_negatives"] == sum(
        row["objects"] for row in json.loads((root / "run" / "per_class.json").read_text())["classes"]
    )
    assert set(errors["per_class"]) == {"circle", "square", "triangle", "plus", "ring"}
    for name in ("errors.md", "errors.json", "errors.png"):
        assert (root / "run" / name).is_file(), name
    # a barely trained model misses objects: the missed-objects gallery shows the validation images
    assert (root / "run" / "errors_missed.jpg").is_file()
    page = (root / "run" / "report.html").read_text()
    assert metrics["machine"] and metrics["machine"] in page and 'src="errors_missed.jpg"' in page


def test_predictor_equals_the_evaluation_path(trained) -> None:
    root, cfg = trained
    predictor = detkit.load(root / "run" / "last.pt", device="cpu")
    assert predictor.class_names == ["circle", "square", "triangle", "plus", "ring"]
    val_set = build_dataset(predictor.cfg, "val")
    loader = DataLoader(val_set, batch_size=2, collate_fn=collate_detection)
    expected, _, _ = predict_batches(predictor.model, loader, torch.device("cpu"))
    paths = [record.path for record in val_set.records]
    results = predictor(paths, batch_size=3)  # other batches than the loader's
    assert len(results) == len(expected) == 4
    assert sum(len(r["boxes"]) for r in results) > 0
    for got, want in zip(results, expected, strict=True):
        assert len(got["boxes"]) == len(want["boxes"])
        assert got["names"] == [predictor.class_names[int(label) - 1] for label in got["labels"]]
        got, want = _canonical(got), _canonical(want)
        torch.testing.assert_close(got["boxes"], want["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(got["scores"], want["scores"], atol=1e-6, rtol=0)
        assert torch.equal(got["labels"], want["labels"])


def _canonical(detections: dict) -> dict:
    """Detections ordered by score, then label and box: a barely trained model has many exactly
    equal scores, whose order the sort leaves to the batch layout (measured: same scores to the
    bit, tied detections in another order at batch 4 than at batch 1)."""
    keys = torch.cat((-detections["scores"][:, None].double(), detections["labels"][:, None].double(),
                      detections["boxes"].double()), 1).tolist()  # fmt: skip
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return {key: detections[key][order] for key in ("boxes", "scores", "labels")}


def test_every_kind_of_image_input_gives_the_same_detections(trained) -> None:
    root, _ = trained
    predictor = detkit.load(root / "run" / "last.pt", device="cpu")
    path = build_dataset(predictor.cfg, "val").records[0].path
    reference = predictor(path)  # one image in, one dict out
    assert isinstance(reference, dict) and len(reference["boxes"]) > 0
    pixels = np.array(Image.open(path).convert("RGB"))
    as_tensor = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    inputs = [str(path), pixels, pixels.astype(np.float32) / 255, Image.open(path), as_tensor]
    for result in predictor(inputs):
        result, want = _canonical(result), _canonical(reference)
        torch.testing.assert_close(result["boxes"], want["boxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(result["scores"], want["scores"], atol=1e-6, rtol=0)
    # A batched tensor is a list of images; boxes lie inside each image's own pixels.
    batched = predictor(as_tensor[None].repeat(2, 1, 1, 1))
    assert isinstance(batched, list) and len(batched) == 2
    height, width = pixels.shape[:2]
    assert float(reference["boxes"][:, 2].max()) <= width and float(reference["boxes"][:, 3].max()) <= height
    # The threshold keeps exactly the detections at or above it.
    cut = float(reference["scores"].median())
    kept = predictor(path, score_threshold=cut)
    assert len(kept["scores"]) == int((reference["scores"] >= cut).sum())
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        predictor(torch.zeros(5, 8, 8))
    with pytest.raises(TypeError, match="cannot read an image from int"):
        predictor(7)


def _renamed_copy(source: Path, target: Path) -> tuple[str, str]:
    """``source`` with one model tensor renamed (in the EMA weights too); returns (old, new)."""
    state = torch.load(source, map_location="cpu", weights_only=True)
    old = next(key for key in state["model"] if key.endswith("weight"))
    new = old.replace("weight", "weight_renamed")
    for weights in (state["model"], (state.get("ema") or {}).get("module")):
        if weights is not None:
            weights[new] = weights.pop(old)
    torch.save(state, target)
    return old, new


def test_inference_refuses_a_checkpoint_with_a_renamed_tensor(trained, tmp_path: Path) -> None:
    root, cfg = trained
    broken = tmp_path / "renamed.pt"
    old, new = _renamed_copy(root / "run" / "last.pt", broken)
    with pytest.raises(ValueError, match="does not match the model") as error:
        detkit.load(broken, device="cpu")
    assert old in str(error.value) and new in str(error.value)

    env = tool_env(root)
    image = build_dataset(cfg, "val").records[0].path
    evaluated = run_tool("eval.py", f"checkpoint={broken}", env=env, check=False)
    assert evaluated.returncode == 2 and old in evaluated.stderr and new in evaluated.stderr
    predicted = run_tool(
        "predict.py", f"checkpoint={broken}", f"input={image}", f"output={tmp_path / 'p'}", env=env, check=False
    )
    assert predicted.returncode == 2 and old in predicted.stderr and "Traceback" not in predicted.stderr


def test_predict_writes_a_coco_results_file_that_eval_scores_like_the_checkpoint(
    trained, tmp_path: Path, capsys
) -> None:
    import json

    from detkit.cli import main

    root, cfg = trained
    checkpoint = root / "run" / "last.pt"
    val_set = build_dataset(cfg, "val")
    ground_truth = tmp_path / "gt.json"
    ground_truth.write_text(json.dumps(val_set.coco_ground_truth()))
    images = tmp_path / "images"
    images.mkdir()
    for record in val_set.records:
        (images / record.path.name).write_bytes(record.path.read_bytes())
    out = tmp_path / "pred"
    # Default settings: the display threshold (0.3) draws, the results file keeps everything.
    assert main(["predict", f"checkpoint={checkpoint}", f"input={images}", f"output={out}",
                 f"ground_truth={ground_truth}"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "score >= 0.3" in printed and "model.roi_head.score_threshold = 0.001" in printed
    assert len(list(out.glob("*.png"))) == len(val_set.records)
    results = json.loads((out / "coco_results.json").read_text())
    drawn = json.loads((out / "detections.json").read_text())
    assert all(d["score"] >= 0.3 for dets in drawn.values() for d in dets)
    assert min(r["score"] for r in results) < 0.3  # a barely trained model scores low
    metrics_file = tmp_path / "metrics.json"
    assert main(["eval", f"ground_truth={ground_truth}", f"detections={out / 'coco_results.json'}",
                 f"output={metrics_file}"]) == 0  # fmt: skip
    from_file = json.loads(metrics_file.read_text())
    # Image by image, as predict runs: with one CPU thread a barely trained model's tied scores
    # order differently in batches of four (measured: AP 0.000885 vs 0.000889).
    model_metrics_file = tmp_path / "model_metrics.json"
    assert main(["eval", f"checkpoint={checkpoint}", "data.batch_size=1", f"output={model_metrics_file}"]) == 0
    from_model = json.loads(model_metrics_file.read_text())
    for name in ("report.html", "errors.png", "errors_missed.jpg"):  # the checkpoint's report, beside it
        assert (checkpoint.parent / "eval_last" / name).is_file(), name
    assert from_file["counts"]["detections"] == from_model["counts"]["detections"]
    for key in ("AP", "AP50", "AR100"):
        assert from_file["coco"][key] == pytest.approx(from_model["coco"][key], abs=1e-6)
    for key in ("voc07", "voc12"):
        assert from_file[key]["mAP"] == pytest.approx(from_model[key]["mAP"], abs=1e-6)
    # Both evaluation modes carry the error breakdown, and it agrees too.
    assert from_file["errors"]["counts"] == from_model["errors"]["counts"]
    for cause, gained in from_model["errors"]["dAP"].items():
        assert from_file["errors"]["dAP"][cause] == pytest.approx(gained, abs=1e-6)
    assert (tmp_path / "metrics_report" / "errors.png").is_file()
    # Without ground truth, ids come from the file order and the class order.
    plain = tmp_path / "plain"
    assert main(["predict", f"checkpoint={checkpoint}", f"input={images}", f"output={plain}", "score=0"]) == 0
    results = json.loads((plain / "coco_results.json").read_text())
    assert results and {r["image_id"] for r in results} <= set(range(1, len(val_set.records) + 1))
    assert {r["category_id"] for r in results} <= set(range(1, 6))
    # A ground-truth file that does not list the inputs is refused, naming what is missing.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"images": [], "categories": [{"id": 1, "name": "circle"}]}))
    capsys.readouterr()
    assert (
        main(["predict", f"checkpoint={checkpoint}", f"input={images}", f"output={plain}", f"ground_truth={other}"])
        == 2
    )
    error = capsys.readouterr().err
    assert "images not listed (by file name): val_000000.jpg" in error
    assert "classes not among its categories: square, triangle, plus, ring" in error


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_export_command_writes_a_file_that_matches_pytorch(trained, tmp_path: Path, capsys) -> None:
    from detkit.cli import main

    root, cfg = trained
    output = tmp_path / "model.torchscript.pt"
    image = build_dataset(cfg, "val").records[0].path
    assert main(["export", f"checkpoint={root / 'run' / 'last.pt'}", "format=torchscript", f"output={output}",
                 f"input={image}", "max_detections=20"]) == 0  # fmt: skip
    assert output.is_file() and "torchscript" in capsys.readouterr().out.lower()
    scripted = torch.jit.load(str(output))
    boxes, scores, labels, counts = scripted(torch.rand(2, 3, 128, 128))
    assert boxes.shape == (2, 20, 4) and scores.shape == labels.shape == (2, 20) and counts.shape == (2,)
