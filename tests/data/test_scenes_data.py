"""The synthetic "scenes" dataset: the generator's promises, and its three layouts read back alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detkit.data.formats.coco import CocoDataset
from detkit.data.formats.voc import VocDataset
from detkit.data.formats.yolo import YoloDataset
from detkit.data.synthetic.scenes import COMPLETE_MARKER, ensure_scenes, write_scenes
from detkit.data.synthetic.scenes_render import SCENE_CATEGORIES, ScenesParams, generate_scene
from detkit.data.validation.summary import check_dataset

# Small images and many empty / tiny objects so that a few images show every case.
SMALL = ScenesParams(num_train=14, num_val=6, min_side=64, max_side=112, min_size=12, max_size=56,
                     tiny_size=(6, 9), tiny_fraction=0.3, empty_fraction=0.25, seed=5)  # fmt: skip


@pytest.fixture(scope="module")
def scenes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("scenes"), SMALL)


def _loaders(root: Path, split: str) -> dict:
    names = list(SCENE_CATEGORIES.values())
    return {
        "coco": CocoDataset(root / "coco" / "annotations" / f"instances_{split}.json", root / "coco" / split),
        "voc": VocDataset(root / "voc", split, class_names=names),
        "yolo": YoloDataset(root / "yolo" / "data.yaml", split),
    }


def test_same_seed_same_scene_other_seed_or_split_differs() -> None:
    first, again = generate_scene(SMALL, "train", 3), generate_scene(SMALL, "train", 3)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.boxes, again.boxes)
    other_seed = generate_scene(ScenesParams(**{**SMALL.__dict__, "seed": 6}), "train", 3)
    assert not np.array_equal(first.image, other_seed.image)
    assert not np.array_equal(first.image, generate_scene(SMALL, "val", 3).image)


def test_default_scenes_mix_sizes_empty_images_tiny_and_large_objects() -> None:
    params = ScenesParams()
    samples = [generate_scene(params, "train", i) for i in range(40)]
    sizes = {s.image.shape[:2] for s in samples}
    assert len(sizes) > 30 and any(h != w for h, w in sizes)
    assert all(params.min_side <= side <= params.max_side for size in sizes for side in size)
    assert any(len(s.boxes) == 0 for s in samples)
    boxes = np.concatenate([s.boxes for s in samples])
    longer = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert (longer <= 10).sum() >= 3 and (longer >= 100).sum() >= 3
    assert any(s.occluded.any() for s in samples) and any(s.truncated.any() for s in samples)
    for s in samples:
        height, width = s.image.shape[:2]
        assert np.array_equal(s.boxes, np.round(s.boxes))
        assert (s.boxes[:, :2] >= 0).all() and (s.boxes[:, 2] <= width).all() and (s.boxes[:, 3] <= height).all()
        assert (s.boxes[:, 2:] > s.boxes[:, :2]).all()
    assert set(np.concatenate([s.category_ids for s in samples]).tolist()) == set(SCENE_CATEGORIES)


def test_coco_category_ids_are_the_non_contiguous_ones(scenes_root: Path) -> None:
    document = json.loads((scenes_root / "coco" / "annotations" / "instances_train.json").read_text())
    assert [c["id"] for c in document["categories"]] == [3, 7, 12, 20, 31]
    assert {a["category_id"] for a in document["annotations"]} <= {3, 7, 12, 20, 31}
    dataset = _loaders(scenes_root, "train")["coco"]
    assert dataset.category_ids == [3, 7, 12, 20, 31]
    assert dataset.class_names == ["star", "arrow", "heart", "digit", "checker"]


@pytest.mark.parametrize("split", ["train", "val"])
def test_three_layouts_hold_the_generated_boxes_and_classes(scenes_root: Path, split: str) -> None:
    loaders = _loaders(scenes_root, split)
    count = SMALL.num_train if split == "train" else SMALL.num_val
    for name, dataset in loaders.items():
        assert len(dataset) == count, name
        for index, record in enumerate(sorted(dataset.records, key=lambda r: r.file_name)):
            sample = generate_scene(SMALL, split, index)
            assert (record.height, record.width) == sample.image.shape[:2], name
            classes = [dataset.class_names[label - 1] for label in record.labels.tolist()]
            assert classes == [SCENE_CATEGORIES[c] for c in sample.category_ids.tolist()], (name, index)
            # COCO and VOC store integer pixels exactly; YOLO's 6 decimals of a fraction of <= 112 px.
            tolerance = 1e-3 if name == "yolo" else 0.0
            np.testing.assert_allclose(record.boxes, sample.boxes, atol=tolerance, rtol=0, err_msg=name)


def test_each_layout_checks_clean(scenes_root: Path) -> None:
    for split in ("train", "val"):
        for name, dataset in _loaders(scenes_root, split).items():
            report = check_dataset(dataset)
            assert report["num_errors"] == 0 and report["num_warnings"] == 0, (name, split, report["problems"])
    train = check_dataset(_loaders(scenes_root, "train")["coco"])
    assert train["num_images_without_objects"] > 0


def test_cache_is_complete_and_reused(tmp_path: Path) -> None:
    params = ScenesParams(**{**SMALL.__dict__, "num_train": 2, "num_val": 1})
    folder = ensure_scenes(params, tmp_path, layouts=("yolo",))
    assert (folder / COMPLETE_MARKER).is_file()
    config = (folder / "yolo" / "data.yaml").read_text()
    assert str(folder.resolve()) in config, "data.yaml must name the final folder, not the staging one"
    stamp = (folder / "yolo" / "labels" / "train" / "train_000000.txt").stat().st_mtime_ns
    assert ensure_scenes(params, tmp_path, layouts=("yolo",)) == folder
    assert (folder / "yolo" / "labels" / "train" / "train_000000.txt").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name], "no staging folder left behind"


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="min_side"):
        ScenesParams(min_side=20)
    with pytest.raises(ValueError, match="tiny_fraction"):
        ScenesParams(tiny_fraction=1.5)
    with pytest.raises(ValueError, match="layouts"):
        write_scenes("/nonexistent", SMALL, ("coco", "json"))
