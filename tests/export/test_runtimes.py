"""Inference backends: ``detkit.load(checkpoint, backend=...)`` runs the checkpoint's ONNX export
through ONNX Runtime or OpenVINO and detects what the PyTorch model detects, for every detector
family (boxes within 1e-3 px of the images' own pixels, scores within 1e-4, detections paired one
to one); evaluation through a backend gives PyTorch's metrics; the export is cached and rebuilt
when the checkpoint or the input size changes; a missing runtime names the extra to install.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

import detkit
from detkit.cli import main as cli_main
from detkit.engine.build import build_dataset
from detkit.engine.inference import evaluate_model
from detkit.export.cache import cache_dir
from detkit.export.check import BOX_TOLERANCE, SCORE_TOLERANCE, pair_detections
from detkit.export.runtimes import BackendNotInstalledError, RuntimeDetector, resolve_backend
from detkit.export.samples import synthetic_images
from detkit.jobs.train_and_evaluate import evaluate_checkpoint
from tests.export.detectors import FAMILIES, SMALL_DATA, save_small_checkpoint

RUNTIMES = [
    pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=f"{name} not installed"))
    for name in ("onnxruntime", "openvino")
]
ALL_FAMILIES = (*FAMILIES, "spp_net", "rfcn", "faster_rcnn_fpn", "localizer")


def images() -> list[np.ndarray]:
    """Three RGB images of other sizes than the input: letterboxing scales them up and down."""
    pictures = [(image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for image in synthetic_images(3, 140)]
    return [pictures[0][:100], pictures[1][:, :120], np.ascontiguousarray(pictures[2][10:130, 5:125])]


def assert_same_detections(got: list[dict], want: list[dict]) -> None:
    """Per image: the same number of detections, paired one to one by content (label, then
    nearest box and score: near-equal scores may be ordered differently), within the tolerances."""
    assert len(got) == len(want)
    for index, (ours, theirs) in enumerate(zip(got, want, strict=True)):
        numpy = [{key: value.numpy() for key, value in det.items() if key != "names"} for det in (ours, theirs)]
        assert len(ours["scores"]) == len(theirs["scores"]), index
        mine, paired = pair_detections(numpy[0]["boxes"], numpy[0]["scores"], numpy[0]["labels"], numpy[1])
        assert len(mine) == len(ours["scores"]), f"image {index}: not every detection has a partner of its label"
        box_diff = np.abs(numpy[0]["boxes"][mine] - numpy[1]["boxes"][paired]).max(initial=0.0)
        score_diff = np.abs(numpy[0]["scores"][mine] - numpy[1]["scores"][paired]).max(initial=0.0)
        assert box_diff <= BOX_TOLERANCE and score_diff <= SCORE_TOLERANCE, (index, box_diff, score_diff)
        assert [ours["names"][i] for i in mine] == [theirs["names"][j] for j in paired]


@pytest.fixture(scope="module")
def torch_detections(checkpoint):
    """``torch_detections(family)``: the PyTorch predictor's detections of ``images()``, once per family."""
    computed = {}

    def detect(family: str) -> list[dict]:
        if family not in computed:
            computed[family] = detkit.load(checkpoint(family), device="cpu")(images())
        return computed[family]

    return detect


@pytest.mark.parametrize("backend", RUNTIMES)
@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_backend_predicts_what_torch_predicts(family: str, backend: str, checkpoint, torch_detections) -> None:
    want = torch_detections(family)
    predictor = detkit.load(checkpoint(family), device="cpu", backend=backend)
    assert predictor.backend == backend and isinstance(predictor.model, RuntimeDetector)
    got = predictor(images())
    assert sum(len(det["scores"]) for det in want) > 0  # not a comparison of empty lists
    assert_same_detections(got, want)
    # One image alone (batch 1), and a score threshold: the same interface as the model's predictor.
    alone = predictor(images()[1], score_threshold=0.2)
    kept = want[1]["scores"] >= 0.2
    subset = {key: value[kept] for key, value in want[1].items() if key != "names"}
    names = [name for name, keep in zip(want[1]["names"], kept, strict=True) if keep]
    assert_same_detections([alone], [{**subset, "names": names}])


def coco_results_as_detections(results: list[dict], image_ids: list[int]) -> list[dict]:
    """COCO results (``bbox`` xywh) → one detections dict per image (boxes xyxy), in ``image_ids`` order."""
    out = []
    for image_id in image_ids:
        mine = [r for r in results if r["image_id"] == image_id]
        boxes = torch.tensor([r["bbox"] for r in mine], dtype=torch.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        labels = torch.tensor([r["category_id"] for r in mine], dtype=torch.int64)
        out.append({"boxes": boxes, "scores": torch.tensor([r["score"] for r in mine]), "labels": labels,
                    "names": [str(int(label)) for label in labels]})  # fmt: skip
    return out


@pytest.mark.parametrize("backend", RUNTIMES)
@pytest.mark.parametrize("family", ["yolov3", "faster_rcnn", "rfcn", "fast_rcnn"])
def test_evaluation_through_a_backend_gives_torchs_metrics(family: str, backend: str, checkpoint) -> None:
    """The evaluation loop with the backend in the model's place (one family per graph kind:
    dense, RPN, R-FCN, given proposals): every COCO and VOC number within 1e-3 of PyTorch's, and
    the results they come from (random weights score low, so the metrics alone would say little)."""
    path = checkpoint(family)
    want = evaluate_checkpoint(path)
    got = evaluate_checkpoint(path, backend=backend)
    assert got["backend"] == backend and want["backend"] == "torch"
    for protocol in ("coco", "voc07", "voc12"):
        for key, value in want[protocol].items():
            if isinstance(value, float):
                assert got[protocol][key] == pytest.approx(value, abs=1e-3), (protocol, key)
    results = {}
    for name in ("torch", backend):
        predictor = detkit.load(path, device="cpu", backend=name)
        dataset = build_dataset(predictor.cfg, "val")
        _, results[name] = evaluate_model(predictor.model, dataset, predictor.device, batch_size=4, return_results=True)
    assert len(results["torch"]) > 0
    ids = sorted({r["image_id"] for r in results["torch"]} | {r["image_id"] for r in results[backend]})
    want_detections = coco_results_as_detections(results["torch"], ids)
    assert_same_detections(coco_results_as_detections(results[backend], ids), want_detections)


def test_export_is_cached_and_rebuilt_when_its_inputs_change(workspace) -> None:
    folder = workspace / "cached"
    folder.mkdir()
    path = folder / "best.pt"
    save_small_checkpoint("yolov1", path, *SMALL_DATA)
    first = detkit.load(path, device="cpu", backend="onnxruntime").export
    assert first.built and first.path.parent == folder and first.path.name.startswith("best.")
    stamp = first.path.stat().st_mtime_ns
    again = detkit.load(path, device="cpu", backend="onnxruntime").export
    assert (again.path, again.built) == (first.path, False) and again.path.stat().st_mtime_ns == stamp
    # Another input size: another graph, another file; the first stays.
    resized = detkit.load(path, device="cpu", backend="onnxruntime", overrides=["data.input_size=96"])
    assert resized.export.built and resized.export.path != first.path and first.path.is_file()
    assert resized(images()[0])["boxes"].shape[1] == 4
    # Settings outside the model do not change the graph: the same file.
    batch = detkit.load(path, device="cpu", backend="onnxruntime", overrides=["data.batch_size=1"]).export
    assert (batch.path, batch.built) == (first.path, False)
    # Overrides that change the graph (a threshold is fixed in it): another file.
    stricter = detkit.load(path, device="cpu", backend="onnxruntime", overrides=["model.head.score_threshold=0.5"])
    assert stricter.export.built and stricter.export.path not in (first.path, resized.export.path)
    # The same config with other weights (the checkpoint saved again): rebuilt under a new key.
    state = torch.load(path, weights_only=True)
    state["model"] = {
        name: tensor + 1e-3 if tensor.is_floating_point() else tensor for name, tensor in state["model"].items()
    }
    torch.save(state, path)
    changed = detkit.load(path, device="cpu", backend="onnxruntime").export
    assert changed.built and changed.path != first.path


def test_unwritable_checkpoint_folder_falls_back_to_the_cache(workspace, checkpoint, monkeypatch) -> None:
    path = checkpoint("yolov1")
    real_touch = type(path).touch

    def read_only(self, *args, **kwargs):  # the checkpoint's folder refuses new files (as a root-owned share)
        if self.parent == path.parent.resolve():
            raise PermissionError(13, "Permission denied", str(self))
        return real_touch(self, *args, **kwargs)

    monkeypatch.setattr(type(path), "touch", read_only)
    export = detkit.load(path, device="cpu", backend="onnxruntime", overrides=["model.head.max_detections=7"]).export
    assert export.built and export.path.parent == cache_dir() and str(cache_dir()).startswith(str(workspace))
    assert not any(path.parent.glob("*.partial"))


def test_missing_runtime_names_its_extra(checkpoint, monkeypatch) -> None:
    path = checkpoint("yolov1")
    monkeypatch.setitem(sys.modules, "openvino", None)  # importing it now fails
    with pytest.raises(BackendNotInstalledError, match=r'backend=openvino .*pip install "detkit\[openvino\]"'):
        detkit.load(path, device="cpu", backend="openvino")
    # auto skips it: the next runtime, and without any runtime the model itself.
    assert resolve_backend("auto", torch.device("cpu")) == "onnxruntime"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'pip install "detkit\[export\]"'):
        detkit.load(path, device="cpu", backend="onnxruntime")
    assert detkit.load(path, device="cpu", backend="auto").backend == "torch"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; choose one of torch, onnxruntime"):
        detkit.load(path, device="cpu", backend="tensorrt")


@pytest.mark.parametrize("backend", RUNTIMES)
def test_predict_and_eval_commands_take_backend(backend: str, checkpoint, tmp_path, capsys) -> None:
    path = checkpoint("faster_rcnn")
    inputs = tmp_path / "images"
    inputs.mkdir()
    from detkit.utils.visualization import save_image

    for index, image in enumerate(images()):
        save_image(inputs / f"{index + 1:06d}.png", image)
    results = {}
    for name in ("torch", backend):
        out = tmp_path / name
        assert cli_main(["predict", f"checkpoint={path}", f"input={inputs}", f"output={out}", f"backend={name}"]) == 0
        results[name] = json.loads((out / "coco_results.json").read_text())
    assert len(results["torch"]) == len(results[backend]) > 0
    want = sorted((r["image_id"], -r["score"]) for r in results["torch"])
    got = sorted((r["image_id"], -r["score"]) for r in results[backend])
    assert np.abs(np.array(want) - np.array(got)).max() <= SCORE_TOLERANCE
    metrics_file = tmp_path / "metrics.json"
    assert cli_main(["eval", f"checkpoint={path}", f"backend={backend}", "report=none", f"output={metrics_file}"]) == 0
    assert json.loads(metrics_file.read_text())["backend"] == backend


def test_openvino_without_onnx_names_the_extra_too(checkpoint, monkeypatch) -> None:
    """The runtime runs an ONNX file that the onnx package writes: without it, the same one line."""
    path = checkpoint("yolov1")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(BackendNotInstalledError, match=r'needs the onnx package.*pip install "detkit\[openvino\]"'):
        detkit.load(path, device="cpu", backend="openvino")


def test_unreadable_cached_file_is_named(workspace) -> None:
    folder = workspace / "damaged"
    folder.mkdir()
    path = folder / "best.pt"
    save_small_checkpoint("yolov1", path, *SMALL_DATA)
    export = detkit.load(path, device="cpu", backend="onnxruntime").export
    export.path.write_bytes(b"not an onnx file")
    for backend in ("onnxruntime", "openvino"):
        if importlib.util.find_spec(backend) is None:
            continue
        with pytest.raises(RuntimeError, match=f"{backend} cannot load {export.path} .*delete the file"):
            detkit.load(path, device="cpu", backend=backend)
    export.path.unlink()
    assert detkit.load(path, device="cpu", backend="onnxruntime").export.built
