"""Selective search through OpenCV: valid boxes on real images, post-processing by hand, parameters."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detkit.data.proposals.methods import params_from_options
from detkit.data.proposals.selective_search import (
    STRATEGIES,
    SelectiveSearchParams,
    postprocess_rects,
    selective_search,
)
from tests.data.proposals.drawn_images import HEIGHT, OBJECTS, WIDTH, draw_image


def _assert_valid(boxes: np.ndarray, height: int, width: int, params: SelectiveSearchParams) -> None:
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert 0 < len(boxes) <= params.max_proposals
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    assert ((boxes[:, 2] - boxes[:, 0]) >= params.min_size).all()
    assert ((boxes[:, 3] - boxes[:, 1]) >= params.min_size).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_finds_the_drawn_objects_with_valid_boxes(strategy: str) -> None:
    image = draw_image(OBJECTS[0], seed=0)
    params = SelectiveSearchParams(strategy=strategy, search_size=None, min_size=3.0)
    boxes = selective_search(image, params)
    _assert_valid(boxes, HEIGHT, WIDTH, params)
    best = box_iou(torch.tensor(OBJECTS[0], dtype=torch.float32), torch.from_numpy(boxes)).max(dim=1).values
    assert (best > 0.8).all(), best


def test_search_size_maps_boxes_back_to_the_stored_image() -> None:
    image = draw_image(OBJECTS[0], seed=0)
    params = SelectiveSearchParams(strategy="single", search_size=2 * WIDTH, min_size=3.0)
    boxes = selective_search(image, params)
    _assert_valid(boxes, HEIGHT, WIDTH, params)
    best = box_iou(torch.tensor(OBJECTS[0], dtype=torch.float32), torch.from_numpy(boxes)).max(dim=1).values
    assert (best > 0.8).all(), best
    # Searching at twice the size gives coordinates in half-pixel steps of the stored image.
    assert np.allclose(boxes * 2, np.round(boxes * 2))


def test_same_seed_same_proposals_and_grey_input() -> None:
    image = draw_image(OBJECTS[1], seed=3)
    params = SelectiveSearchParams(strategy="fast", search_size=None)
    assert np.array_equal(selective_search(image, params), selective_search(image, params))
    grey = image[:, :, 0].copy()
    assert selective_search(grey, SelectiveSearchParams(strategy="single", search_size=None)).shape[1] == 4


def test_max_proposals_keeps_the_best_ranked() -> None:
    image = draw_image(OBJECTS[0], seed=0)
    every = selective_search(image, SelectiveSearchParams(strategy="fast", search_size=None))
    capped = selective_search(
        image, SelectiveSearchParams(strategy="fast", search_size=None, max_proposals=5)
    )
    assert np.array_equal(capped, every[:5])


def test_postprocess_rects_by_hand() -> None:
    rects = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 2, 2], [8, 9, 30, 20], [1, 1, 4, 4]])
    params = SelectiveSearchParams(min_size=2.0)
    boxes = postprocess_rects(rects, scale=(2.0, 0.5), image_size=(20, 50), params=params)
    # (x, y, w, h) -> xyxy, x times 2 and y times 0.5; the duplicate goes, (5, 5, 2, 2) is 1 px
    # high after scaling (under min_size), (8, 9, 30, 20) is clipped at x = 50.
    expected = np.array([[0, 0, 20, 5], [16, 4.5, 50, 14.5], [2, 0.5, 10, 2.5]], dtype=np.float32)
    assert np.array_equal(boxes, expected)
    capped = postprocess_rects(
        rects, scale=(2.0, 0.5), image_size=(20, 50), params=dataclasses.replace(params, max_proposals=2)
    )
    assert np.array_equal(capped, expected[:2])


def test_duplicate_iou_drops_near_duplicates_of_better_ranked_boxes() -> None:
    rects = np.array([[0, 0, 20, 20], [0, 0, 20, 19], [40, 40, 10, 10], [0, 0, 21, 20]])
    params = SelectiveSearchParams(min_size=1.0, duplicate_iou=0.9)
    boxes = postprocess_rects(rects, scale=(1.0, 1.0), image_size=(100, 100), params=params)
    assert boxes.tolist() == [[0, 0, 20, 20], [40, 40, 50, 50]]
    exact_only = postprocess_rects(
        rects, scale=(1.0, 1.0), image_size=(100, 100), params=dataclasses.replace(params, duplicate_iou=1.0)
    )
    assert len(exact_only) == 4


def test_key_changes_with_every_parameter() -> None:
    base = SelectiveSearchParams()
    assert base.key() == SelectiveSearchParams().key()
    changes = dict(strategy="quality", search_size=300, max_proposals=10, min_size=2.0, duplicate_iou=0.8,
                   base_k=100, inc_k=50, sigma=0.5, seed=1)  # fmt: skip
    assert {f.name for f in dataclasses.fields(base)} == set(changes)
    keys = {dataclasses.replace(base, **{name: value}).key() for name, value in changes.items()}
    assert len(keys) == len(changes) and base.key() not in keys


def test_bad_parameters_and_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="strategy"):
        SelectiveSearchParams(strategy="slow")
    with pytest.raises(ValueError, match="duplicate_iou"):
        SelectiveSearchParams(duplicate_iou=0.0)
    with pytest.raises(ValueError, match="uint8"):
        selective_search(np.zeros((8, 8, 3), np.float32))
    params = params_from_options({"strategy": "single", "cache_dir": "/x", "_target_": "y"})
    assert params == SelectiveSearchParams(strategy="single")


def test_an_opencv_without_contrib_is_explained(monkeypatch) -> None:
    import cv2

    monkeypatch.delattr(cv2, "ximgproc")
    with pytest.raises(RuntimeError, match="opencv-contrib-python-headless"):
        selective_search(draw_image(OBJECTS[0], seed=0))
