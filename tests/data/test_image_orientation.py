"""Images as users have them, on the dataset side: EXIF orientation applied when reading (every
loader, the dataset check and the training transforms see the upright picture), an orientation
that swaps the annotated width and height reported as such, and empty or non-finite image files
refused naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.cli import main as detkit_main
from detkit.data.formats.coco import CocoDataset
from detkit.data.formats.voc import VocDataset
from detkit.data.formats.yolo import YoloDataset
from detkit.data.image_files import check_image_file, read_image
from detkit.data.validation.problems import DataError
from detkit.data.validation.summary import check_dataset
from detkit.engine.build import build_dataset
from detkit.engine.config import load_config
from tests.data.oriented import (
    BLUE,
    RED,
    STORED_HEIGHT,
    STORED_WIDTH,
    UPRIGHT_BOX,
    UPRIGHT_HEIGHT,
    UPRIGHT_WIDTH,
    VIEWED,
    mean_colour,
    stored_pixels,
    write_coco,
    write_nan_tiff,
    write_oriented,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DETKIT_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("orientation", sorted(VIEWED))
def test_every_exif_orientation_is_read_as_a_viewer_shows_it(tmp_path: Path, orientation: int) -> None:
    pixels = stored_pixels(seed=orientation)
    path = write_oriented(tmp_path / "photo.png", orientation, pixels)  # lossless: exact comparison
    upright = read_image(path)
    np.testing.assert_array_equal(upright, VIEWED[orientation](pixels))
    assert upright.flags.writeable and upright.dtype == np.uint8
    found = check_image_file(path)
    assert found.kind is None and found.size == (upright.shape[1], upright.shape[0])
    assert found.orientation == orientation


def test_phone_jpeg_is_read_upright(tmp_path: Path) -> None:
    upright = read_image(write_oriented(tmp_path / "phone.jpg", 6))
    assert upright.shape == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH, 3)
    # Red on top, blue below (stored: red left, blue right).
    np.testing.assert_allclose(mean_colour(upright[: UPRIGHT_HEIGHT // 2 - 5]), RED, atol=6)
    np.testing.assert_allclose(mean_colour(upright[UPRIGHT_HEIGHT // 2 + 5 :]), BLUE, atol=6)


def _coco_with_phone_photos(root: Path) -> Path:
    """upright.jpg annotated as the upright picture (120x200), raw.jpg as the stored pixels (200x120)."""
    write_oriented(root / "images" / "upright.jpg", 6)
    write_oriented(root / "images" / "raw.jpg", 6)
    return write_coco(root, {"upright.jpg": (UPRIGHT_WIDTH, UPRIGHT_HEIGHT), "raw.jpg": (STORED_WIDTH, STORED_HEIGHT)},
                      boxes={"raw.jpg": [10.0, 10.0, 60.0, 60.0]})  # fmt: skip


def test_coco_reads_upright_and_reports_an_annotation_of_the_stored_pixels(tmp_path: Path) -> None:
    ann = _coco_with_phone_photos(tmp_path)
    dataset = CocoDataset(ann, tmp_path / "images", on_bad_data="skip")
    [problem] = [p for p in dataset.problems if p.severity == "error"]
    assert problem.kind == "exif_rotation_swaps_size" and Path(problem.file).name == "raw.jpg"
    assert (
        "EXIF orientation 6" in problem.reason and "200x120" in problem.reason and "120x200" in problem.reason
    )
    assert [r.file_name for r in dataset.records] == ["upright.jpg"]
    image, record = dataset.load(0)
    assert image.shape == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH, 3)
    x1, y1, x2, y2 = (int(v) for v in record.boxes[0])
    assert record.boxes[0].tolist() == UPRIGHT_BOX
    np.testing.assert_allclose(mean_colour(image[y1:y2, x1:x2]), RED, atol=6)  # the box holds the red object
    with pytest.raises(DataError, match=r"raw\.jpg.*\[exif_rotation_swaps_size\]"):
        CocoDataset(ann, tmp_path / "images")


def test_training_transforms_get_the_upright_picture_and_its_boxes(tmp_path: Path) -> None:
    write_oriented(tmp_path / "images" / "upright.jpg", 6)
    ann = write_coco(tmp_path, {"upright.jpg": (UPRIGHT_WIDTH, UPRIGHT_HEIGHT)})
    data = [f"data.{split}.{key}={value}" for split in ("train", "val")
            for key, value in (("ann_file", ann), ("img_dir", tmp_path / "images"))]  # fmt: skip
    cfg = load_config(["config=ssd_mobilenet_v1_shapes", "data=coco", "data.input_size=100", *data])
    image, target = build_dataset(cfg, "train", augment=False)[0]
    # Letterboxed: the longer side (200 px, upright height) becomes 100, so the scale is 0.5.
    assert tuple(image.shape) == (3, 100, 100)
    assert target["orig_size"].tolist() == [UPRIGHT_HEIGHT, UPRIGHT_WIDTH]
    torch_box = target["boxes"][0].tolist()
    assert torch_box == pytest.approx([v * 0.5 for v in UPRIGHT_BOX])
    x1, y1, x2, y2 = (int(v) for v in torch_box)
    pixels = image.permute(1, 2, 0).numpy()
    np.testing.assert_allclose(mean_colour(pixels[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]), RED, atol=8)


def _voc(root: Path, width: int, height: int) -> Path:
    write_oriented(root / "JPEGImages" / "phone.jpg", 6)
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "phone.xml").write_text(
        f"<annotation><filename>phone.jpg</filename><size><width>{width}</width><height>{height}</height>"
        "<depth>3</depth></size><object><name>thing</name><difficult>0</difficult>"
        "<bndbox><xmin>11</xmin><ymin>11</ymin><xmax>110</xmax><ymax>90</ymax></bndbox></object></annotation>"
    )
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("phone\n")
    return root


def test_voc_size_of_the_stored_pixels_is_reported(tmp_path: Path) -> None:
    swapped = VocDataset(_voc(tmp_path / "raw", STORED_WIDTH, STORED_HEIGHT), "train", class_names=["thing"],
                         on_bad_data="skip")  # fmt: skip
    assert [(Path(p.file).name, p.kind) for p in swapped.problems if p.severity == "error"] == [
        ("phone.jpg", "exif_rotation_swaps_size")
    ]
    upright = VocDataset(_voc(tmp_path / "up", UPRIGHT_WIDTH, UPRIGHT_HEIGHT), "train", class_names=["thing"])
    assert upright.load(0)[0].shape == (UPRIGHT_HEIGHT, UPRIGHT_WIDTH, 3)


def test_yolo_normalised_boxes_land_in_the_upright_picture(tmp_path: Path) -> None:
    write_oriented(tmp_path / "images" / "phone.jpg", 6)
    (tmp_path / "labels").mkdir()
    # Centre (60, 50), 100 x 80 in the 120 x 200 upright picture.
    (tmp_path / "labels" / "phone.txt").write_text(f"0 {60 / 120} {50 / 200} {100 / 120} {80 / 200}\n")
    yaml = tmp_path / "data.yaml"
    yaml.write_text(f"path: {tmp_path}\ntrain: images\nval: images\nnames: [thing]\n")
    dataset = YoloDataset(yaml, "train")
    image, record = dataset.load(0)
    assert (record.width, record.height) == (UPRIGHT_WIDTH, UPRIGHT_HEIGHT)
    assert record.boxes[0].tolist() == pytest.approx(UPRIGHT_BOX, abs=1e-3)
    np.testing.assert_allclose(mean_colour(image[12:88, 12:108]), RED, atol=6)


def test_check_command_names_the_swapped_file(tmp_path: Path, capsys) -> None:
    ann = _coco_with_phone_photos(tmp_path)
    data = [f"data.{split}.{key}={value}" for split in ("train", "val")
            for key, value in (("ann_file", ann), ("img_dir", tmp_path / "images"))]  # fmt: skip
    report = tmp_path / "report.json"
    assert detkit_main(["check", "data=coco", *data, "split=train", f"output={report}"]) == 1
    err = capsys.readouterr().err
    assert "raw.jpg" in err and "exif_rotation_swaps_size" in err and "upright.jpg" not in err
    train = json.loads(report.read_text())["train"]
    assert train["problems_by_kind"] == {"exif_rotation_swaps_size": 1}
    # Built from headers only, the check still sees the orientation.
    headers_only = CocoDataset(ann, tmp_path / "images", on_bad_data="skip", verify_images=False)
    assert check_dataset(headers_only)["problems_by_kind"] == {"exif_rotation_swaps_size": 1}


def test_empty_and_non_finite_image_files_are_refused_by_name(tmp_path: Path) -> None:
    empty = tmp_path / "images" / "empty.jpg"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    nan = write_nan_tiff(tmp_path / "images" / "nan.tif")
    with pytest.raises(ValueError, match=r"empty\.jpg.*empty"):
        read_image(empty)
    with pytest.raises(ValueError, match=r"nan\.tif.*1 NaN or infinite"):
        read_image(nan)
    assert check_image_file(nan).kind == "non_finite_image"
    assert check_image_file(nan, decode=False).kind is None  # headers alone cannot see pixels
    ann = write_coco(tmp_path, {"empty.jpg": (40, 30), "nan.tif": (40, 30)},
                     boxes={"empty.jpg": [1, 1, 9, 9], "nan.tif": [1, 1, 9, 9]})
    dataset = CocoDataset(ann, tmp_path / "images", on_bad_data="skip")
    assert {(Path(p.file).name, p.kind) for p in dataset.problems if p.severity == "error"} == {
        ("empty.jpg", "unreadable_image"),
        ("nan.tif", "non_finite_image"),
    }
    assert dataset.records == []


def test_headers_only_check_of_a_png_reads_no_pixels(tmp_path: Path) -> None:
    from tests.data.planted import write_truncated

    # PIL decodes a whole PNG to look for an EXIF chunk behind the pixels; a headers-only check
    # must not (it would cost a full decode), so a cut PNG passes it and fails the decoding one.
    cut = write_truncated(tmp_path / "cut.png")
    assert check_image_file(cut, decode=False).kind is None
    assert check_image_file(cut).kind == "truncated_image"
    assert check_image_file(write_oriented(tmp_path / "phone.png", 6), decode=False).size == (120, 200)
