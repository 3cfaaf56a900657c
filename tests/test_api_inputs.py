"""Images as users have them, on the model side: ``detkit.load``'s Predictor, ``detkit predict``
and evaluation read a phone JPEG upright (boxes in the picture a viewer shows), and refuse empty
or non-finite images and arrays with an error that names the input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import detkit
from detkit.cli import main as detkit_main
from detkit.data.collate import collate_detection
from detkit.data.image_files import read_image
from detkit.data.synthetic.shapes import SHAPE_CLASSES
from detkit.engine.build import build_dataset
from detkit.engine.inference import predict_batches
from detkit.jobs.train_and_evaluate import evaluate_checkpoint
from tests.data.oriented import (
    STORED_HEIGHT,
    STORED_WIDTH,
    UPRIGHT_HEIGHT,
    UPRIGHT_WIDTH,
    stored_pixels,
    write_coco,
    write_nan_tiff,
    write_oriented,
)
from tests.export.detectors import save_small_checkpoint


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A randomly initialised small SSD checkpoint and a phone photo (stored 200x120, EXIF 6)."""
    root = tmp_path_factory.mktemp("inputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DETKIT_CACHE", str(root / "cache"))
        save_small_checkpoint("ssd", root / "ssd.pt")
        photo = write_oriented(root / "images" / "phone.jpg", 6, stored_pixels(seed=1))
        yield root, photo


def _same(got: dict, want: dict) -> None:
    torch.testing.assert_close(got["boxes"], want["boxes"], atol=1e-4, rtol=0)
    torch.testing.assert_close(got["scores"], want["scores"], atol=1e-6, rtol=0)


def test_predictor_reads_a_phone_photo_upright(setting) -> None:
    root, photo = setting
    predictor = detkit.load(root / "ssd.pt", device="cpu")
    upright = read_image(photo)
    assert upright.shape == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH, 3)
    from_file = predictor(photo)
    assert len(from_file["boxes"]) > 0
    # In the upright frame: x within its 120 px width, some box below the stored 120 px height.
    assert float(from_file["boxes"][:, 2].max()) <= UPRIGHT_WIDTH
    assert float(from_file["boxes"][:, 3].max()) > STORED_HEIGHT
    _same(from_file, predictor(upright))
    with Image.open(photo) as image:  # a PIL image still carrying its EXIF tag is turned too
        _same(predictor(image), predictor(upright))
    sideways = predictor(np.array(Image.open(photo)))  # the stored grid as an array: another picture
    assert float(sideways["boxes"][:, 2].max()) > UPRIGHT_WIDTH


def test_predictor_refuses_empty_and_non_finite_inputs_by_name(setting, tmp_path: Path) -> None:
    root, photo = setting
    predictor = detkit.load(root / "ssd.pt", device="cpu")
    good = read_image(photo)
    nan = good.astype(np.float32) / 255
    nan[5, 5, 1] = np.nan
    inf = good.astype(np.float32) / 255
    inf[0, 0, 0] = np.inf
    cases = [
        ([good, nan], r"array input #1 holds 1 NaN or infinite"),
        (inf, r"array input #0 holds 1 NaN or infinite"),
        ([good, good, np.zeros((0, 0, 3), np.uint8)], r"array input #2 is empty"),
        (np.zeros((0, 0), np.float32), r"array input #0 is empty"),
        (torch.full((3, 8, 8), float("nan")), r"tensor input #0 holds 192 NaN"),
        (torch.zeros(3, 0, 5), r"tensor input #0 is empty"),
        (Image.fromarray(np.full((6, 6), np.nan, np.float32), mode="F"), r"PIL image input #0 holds 36 NaN"),
        (Image.new("RGB", (0, 0)), r"PIL image input #0 is empty"),
    ]
    for images, message in cases:
        with pytest.raises(ValueError, match=message):
            predictor(images, batch_size=2)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.jpg: the file is empty"):
        predictor(empty)
    with pytest.raises(ValueError, match=r"nan\.tif holds 1 NaN"):
        predictor(write_nan_tiff(tmp_path / "nan.tif"))


def test_predict_command_draws_and_writes_the_upright_picture(setting, tmp_path: Path, capsys) -> None:
    root, photo = setting
    out = tmp_path / "out"
    assert (
        detkit_main(
            ["predict", f"checkpoint={root / 'ssd.pt'}", f"input={photo}", f"output={out}", "score=0"]
        )
        == 0
    )
    with Image.open(out / "phone.png") as drawn:
        assert drawn.size == (UPRIGHT_WIDTH, UPRIGHT_HEIGHT)
    boxes = np.array([d["box"] for d in json.loads((out / "detections.json").read_text())["phone.jpg"]])
    assert len(boxes) and boxes[:, 2].max() <= UPRIGHT_WIDTH + 0.01 and boxes[:, 3].max() > STORED_HEIGHT
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(photo.read_bytes())
    (folder / "b.jpg").write_bytes(b"")
    capsys.readouterr()
    assert detkit_main(["predict", f"checkpoint={root / 'ssd.pt'}", f"input={folder}", f"output={out}"]) == 2
    assert "b.jpg" in capsys.readouterr().err


def test_evaluation_reads_upright_and_refuses_an_annotation_of_the_stored_pixels(
    setting, tmp_path: Path
) -> None:
    root, photo = setting
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "phone.jpg").write_bytes(photo.read_bytes())
    ann = write_coco(tmp_path, {"phone.jpg": (UPRIGHT_WIDTH, UPRIGHT_HEIGHT)}, class_names=SHAPE_CLASSES)
    data = ["data=coco"] + [
        f"data.{split}.{key}={value}"
        for split in ("train", "val")
        for key, value in (("ann_file", ann), ("img_dir", tmp_path / "images"))
    ]
    # The data goes into the checkpoint's own config (as training on it would write it).
    checkpoint = tmp_path / "coco.pt"
    save_small_checkpoint("ssd", checkpoint, *data)
    metrics = evaluate_checkpoint(checkpoint)
    assert 0.0 <= metrics["coco"]["AP"] <= 1.0
    # The evaluation's own loader gives the predictor's detections of the upright picture.
    predictor = detkit.load(checkpoint, device="cpu")
    loader = DataLoader(build_dataset(predictor.cfg, "val"), batch_size=1, collate_fn=collate_detection)
    [evaluated], _, _ = predict_batches(predictor.model, loader, torch.device("cpu"))
    _same(evaluated, predictor(read_image(photo)))
    write_coco(tmp_path, {"phone.jpg": (STORED_WIDTH, STORED_HEIGHT)}, class_names=SHAPE_CLASSES)
    with pytest.raises(ValueError, match=r"phone\.jpg.*exif_rotation_swaps_size"):
        evaluate_checkpoint(checkpoint)
    # Empty and non-finite image files are refused by name before any evaluation.
    write_nan_tiff(tmp_path / "images" / "nan.tif")
    (tmp_path / "images" / "empty.jpg").write_bytes(b"")
    write_coco(tmp_path, {"nan.tif": (40, 30), "empty.jpg": (40, 30)}, boxes={"nan.tif": [1, 1, 9, 9],
               "empty.jpg": [1, 1, 9, 9]}, class_names=SHAPE_CLASSES)  # fmt: skip
    with pytest.raises(ValueError) as refused:
        evaluate_checkpoint(checkpoint)
    assert "nan.tif: the image holds NaN or infinite pixel values" in str(refused.value)
    assert "empty.jpg: the file is empty" in str(refused.value)
