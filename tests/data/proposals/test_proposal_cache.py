"""The on-disk proposal cache and the dataset-wide, parallel computation behind tools/proposals.py."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from detkit.data.proposals import compute
from detkit.data.proposals.cache import ProposalCache, hash_file, hash_pixels, image_file_key
from detkit.data.proposals.compute import compute_dataset_proposals
from detkit.data.proposals.recall import RecallMeter
from detkit.data.proposals.selective_search import SelectiveSearchParams, selective_search
from tests.data.oriented import write_oriented
from tests.data.proposals.drawn_images import draw_image

PARAMS = SelectiveSearchParams(strategy="single", search_size=None, min_size=3.0)


def _forbid_search(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("the search ran although the cache holds the proposals")

    monkeypatch.setattr(compute, "search_proposals", fail)


def test_put_get_roundtrip_and_corrupt_entries(tmp_path) -> None:
    cache = ProposalCache(tmp_path, PARAMS)
    boxes = np.array([[0, 1, 2, 3], [4, 5, 6.5, 7]], dtype=np.float32)
    path = cache.put("ab" * 16, boxes)
    assert path.parent.parent == tmp_path / PARAMS.key()
    assert np.array_equal(cache.get("ab" * 16), boxes)
    assert cache.get("cd" * 16) is None
    assert not list(tmp_path.rglob("*.tmp"))  # atomic writes leave no temporary files
    path.write_bytes(b"not an array")
    assert cache.get("ab" * 16) is None
    assert (tmp_path / PARAMS.key() / "params.json").is_file()


def test_content_hashes() -> None:
    image = draw_image([(2, 2, 20, 20)], seed=0)
    assert hash_pixels(image) == hash_pixels(image.copy())
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert hash_pixels(changed) != hash_pixels(image)
    assert hash_pixels(image.reshape(-1, 3)) != hash_pixels(image)  # the shape is part of the content


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_turned_photo_has_its_own_key_and_other_files_keep_their_byte_hash(tmp_path, orientation) -> None:
    # Proposals are searched on the upright picture; an entry written under the byte hash by a
    # version that searched the stored pixels must not be read back for a turned photo.
    path = write_oriented(tmp_path / f"photo{orientation}.jpg", orientation)
    if orientation == 1:
        assert image_file_key(path) == hash_file(path)
    else:
        assert image_file_key(path) != hash_file(path)
        assert image_file_key(path) == image_file_key(path)  # still a content key: stable
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), np.zeros((8, 8, 3), np.uint8))
    assert image_file_key(plain) == hash_file(plain)


def test_second_run_reads_the_cache_and_changed_parameters_invalidate_it(
    make_dataset, tmp_path, monkeypatch
) -> None:
    dataset = make_dataset()
    first = compute_dataset_proposals(dataset, PARAMS, cache_dir=tmp_path, num_workers=0, progress=False)
    assert (first.recall["searched_images"], first.recall["cached_images"]) == (3, 0)
    for index, record in enumerate(dataset.records):
        assert first.content_hashes[index] == hash_file(record.path)
        expected = selective_search(cv2.imread(str(record.path))[:, :, ::-1].copy(), PARAMS)
        assert np.array_equal(first.boxes(index), expected)

    with monkeypatch.context() as patch:
        _forbid_search(patch)
        second = compute_dataset_proposals(dataset, PARAMS, cache_dir=tmp_path, num_workers=0, progress=False)
    assert (second.recall["searched_images"], second.recall["cached_images"]) == (0, 3)
    assert second.content_hashes == first.content_hashes
    assert all(np.array_equal(first.boxes(i), second.boxes(i)) for i in range(3))
    assert {k: v for k, v in second.recall.items() if "seconds" not in k and "images" not in k} == {
        k: v for k, v in first.recall.items() if "seconds" not in k and "images" not in k
    }

    changed = dataclasses.replace(PARAMS, min_size=6.0)
    third = compute_dataset_proposals(dataset, changed, cache_dir=tmp_path, num_workers=0, progress=False)
    assert third.recall["searched_images"] == 3
    assert third.cache.folder != first.cache.folder

    # An edited image is searched again; the others still come from the cache.
    path = dataset.records[1].path
    cv2.imwrite(str(path), cv2.cvtColor(draw_image([(5, 5, 60, 40)], seed=9), cv2.COLOR_RGB2BGR))
    fourth = compute_dataset_proposals(dataset, PARAMS, cache_dir=tmp_path, num_workers=0, progress=False)
    assert (fourth.recall["searched_images"], fourth.recall["cached_images"]) == (1, 2)


def test_process_pool_gives_the_same_proposals_and_recall(make_dataset, tmp_path) -> None:
    dataset = make_dataset()
    seen: dict[int, np.ndarray] = {}
    pooled = compute_dataset_proposals(
        dataset, PARAMS, cache_dir=tmp_path / "pool", num_workers=2, progress=False, on_image=seen.__setitem__
    )
    serial = compute_dataset_proposals(
        dataset, PARAMS, cache_dir=tmp_path / "serial", num_workers=0, progress=False
    )
    assert sorted(seen) == [0, 1, 2]
    meter = RecallMeter()
    for index, record in enumerate(dataset.records):
        assert np.array_equal(pooled.boxes(index), serial.boxes(index))
        assert np.array_equal(seen[index], serial.boxes(index))
        meter.update(record.boxes, serial.boxes(index))
    assert pooled.recall["recall@0.5"] == pytest.approx(meter.summary()["recall@0.5"])
    assert pooled.recall["boxes_per_image"] == pytest.approx(meter.summary()["boxes_per_image"])
    # The drawn rectangles are easy: every one is found.
    assert pooled.recall["recall@0.7"] == 1.0


def test_a_dataset_without_records_is_refused(tmp_path) -> None:
    with pytest.raises(TypeError, match="image records"):
        compute_dataset_proposals([1, 2, 3], PARAMS, cache_dir=tmp_path, progress=False)
