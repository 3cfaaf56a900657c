"""The image check remembers each file's verdict by path, size and modification time: a second
start decodes nothing, a touched or rewritten file is decoded again (and only it), a removed file
is noticed; in a distributed job only rank 0 decodes and every rank gets its verdicts."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from detkit.data import image_files
from detkit.data.formats.coco import CocoDataset
from detkit.data.formats.yolo import YoloDataset
from detkit.data.validation.image_check_cache import RACY_SECONDS, cache_file, checked_image_files
from tests.data.planted import HEIGHT, WIDTH, write_image, write_truncated

NAMES = [f"img{i}.jpg" for i in range(5)]
AN_HOUR_AGO = time.time() - 3600


def _dataset_files(root: Path) -> Path:
    """Five images (their times an hour back, past the racy window) and their COCO file."""
    for index, name in enumerate(NAMES):
        os.utime(write_image(root / "images" / name, seed=index), (AN_HOUR_AGO, AN_HOUR_AGO))
    images = [{"id": i, "file_name": n, "width": WIDTH, "height": HEIGHT} for i, n in enumerate(NAMES, 1)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 20, 20]} for i in range(1, 6)]
    ann = root / "ann.json"
    ann.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}]})
    )
    return ann


@pytest.fixture
def decodes(monkeypatch, tmp_path) -> list[tuple[str, bool]]:
    """Every (file name, decode) the image check reads from disk, in this test."""
    monkeypatch.setenv("DETKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DETKIT_IMAGE_CHECK_CACHE", raising=False)
    calls: list[tuple[str, bool]] = []
    real = image_files.check_image_file

    def counting(path, *, decode=True):
        calls.append((Path(path).name, decode))
        return real(path, decode=decode)

    monkeypatch.setattr(image_files, "check_image_file", counting)
    return calls


def _build(ann: Path, **options) -> CocoDataset:
    return CocoDataset(ann, ann.parent / "images", on_bad_data="skip", **options)


def test_second_check_decodes_nothing_and_finds_the_same(tmp_path: Path, decodes) -> None:
    ann = _dataset_files(tmp_path)
    first = _build(ann)
    assert sorted(decodes) == [(name, True) for name in NAMES]
    assert cache_file(str(ann)).is_file()
    decodes.clear()
    second = _build(ann)
    assert decodes == []
    assert [r.file_name for r in second.records] == [r.file_name for r in first.records] == NAMES
    assert second.problems == first.problems


def test_touched_or_rewritten_file_is_checked_again_alone(tmp_path: Path, decodes) -> None:
    ann = _dataset_files(tmp_path)
    _build(ann)
    decodes.clear()
    later = AN_HOUR_AGO + 60
    os.utime(tmp_path / "images" / "img1.jpg", (later, later))  # touched: same bytes, new time
    assert [r.file_name for r in _build(ann).records] == NAMES
    assert decodes == [("img1.jpg", True)]
    decodes.clear()
    os.utime(write_truncated(tmp_path / "images" / "img3.jpg"), (later, later))  # rewritten, cut short
    dataset = _build(ann)
    assert decodes == [("img3.jpg", True)]
    assert [(Path(p.file).name, p.kind) for p in dataset.problems] == [("img3.jpg", "truncated_image")]
    decodes.clear()
    assert _build(ann).problems == dataset.problems and decodes == []  # a bad verdict is remembered too


def test_removed_file_is_noticed(tmp_path: Path, decodes) -> None:
    ann = _dataset_files(tmp_path)
    _build(ann)
    (tmp_path / "images" / "img2.jpg").unlink()
    dataset = _build(ann)
    assert [(Path(p.file).name, p.kind) for p in dataset.problems] == [("img2.jpg", "missing_image")]
    assert [r.file_name for r in dataset.records] == [n for n in NAMES if n != "img2.jpg"]
    remembered = json.loads(cache_file(str(ann)).read_text())["files"]
    assert sorted(Path(key).name for key in remembered) == [n for n in NAMES if n != "img2.jpg"]


def test_headers_only_verdict_does_not_stand_in_for_decoding(tmp_path: Path, decodes) -> None:
    ann = _dataset_files(tmp_path)
    _build(ann, verify_images=False)
    assert sorted(decodes) == [(name, False) for name in NAMES]
    decodes.clear()
    _build(ann)  # decoding was asked for: every file is decoded once
    assert sorted(decodes) == [(name, True) for name in NAMES]
    decodes.clear()
    _build(ann, verify_images=False)  # a decoded verdict answers a headers-only check
    assert decodes == []


def test_splits_sharing_a_source_keep_each_others_verdicts(tmp_path: Path, decodes) -> None:
    _dataset_files(tmp_path)
    paths = [tmp_path / "images" / name for name in NAMES]
    source = str(tmp_path / "data.yaml")  # a YOLO data YAML names both splits
    for split in (paths[:3], paths[3:]):
        checked_image_files(split, decode=True, source=source)
    decodes.clear()
    for split in (paths[:3], paths[3:]):
        checked_image_files(split, decode=True, source=source)
    assert decodes == []


def test_yolo_sizes_from_headers_are_remembered_too(tmp_path: Path, decodes) -> None:
    _dataset_files(tmp_path)
    (tmp_path / "labels").mkdir()
    for name in NAMES:
        (tmp_path / "labels" / name.replace(".jpg", ".txt")).write_text("0 0.5 0.5 0.25 0.25\n")
    yaml = tmp_path / "data.yaml"
    yaml.write_text(f"path: {tmp_path}\ntrain: images\nval: images\nnames: [a]\n")
    first = YoloDataset(yaml, "train")
    assert sorted(decodes) == sorted([(name, False) for name in NAMES] + [(name, True) for name in NAMES])
    decodes.clear()
    second = YoloDataset(yaml, "train")
    assert decodes == []
    assert [(r.width, r.height) for r in second.records] == [(r.width, r.height) for r in first.records]
    assert (second.records[0].width, second.records[0].height) == (WIDTH, HEIGHT)


def test_files_written_just_now_are_not_remembered(tmp_path: Path, decodes) -> None:
    ann = _dataset_files(tmp_path)
    now = time.time() - RACY_SECONDS / 4  # inside the window where a same-sized rewrite keeps the time
    os.utime(tmp_path / "images" / "img4.jpg", (now, now))
    _build(ann)
    decodes.clear()
    _build(ann)
    assert decodes == [("img4.jpg", True)]


def test_memory_can_be_turned_off(tmp_path: Path, decodes, monkeypatch) -> None:
    monkeypatch.setenv("DETKIT_IMAGE_CHECK_CACHE", "0")
    ann = _dataset_files(tmp_path)
    _build(ann)
    _build(ann)
    assert len(decodes) == 2 * len(NAMES)
    assert not cache_file(str(ann)).exists()


def _rank_worker(rank: int, world: int, port: int, root: str) -> None:
    """Builds the dataset on one rank of a gloo group; writes what it decoded and what it found."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), DETKIT_CACHE=f"{root}/cache{rank}")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    calls = []
    real = image_files.check_image_file
    image_files.check_image_file = lambda path, *, decode=True: (
        calls.append(Path(path).name) or real(path, decode=decode)
    )
    try:
        dataset = _build(Path(root) / "ann.json")
        found = {"decoded": sorted(calls), "kept": [r.file_name for r in dataset.records],
                 "problems": [(Path(p.file).name, p.kind) for p in dataset.problems]}  # fmt: skip
        Path(root, f"rank{rank}.json").write_text(json.dumps(found))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_only_rank_zero_decodes_and_every_rank_gets_the_verdicts(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    _dataset_files(tmp_path)
    (tmp_path / "images" / "img0.jpg").unlink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(_rank_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert zero["decoded"] == NAMES and one["decoded"] == []  # img0.jpg checked and found missing
    assert zero["kept"] == one["kept"] == NAMES[1:]
    assert zero["problems"] == one["problems"] == [["img0.jpg", "missing_image"]]
    assert not (tmp_path / "cache1").exists()  # rank 1 neither read nor wrote a cache
