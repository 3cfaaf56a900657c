"""Edge Boxes: the drawn objects found, the output format, the edge map's conventions, settings
and the choice of method (its own cache folder, selective search still the default)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from detkit.data.proposals.cache import ProposalCache, hash_pixels
from detkit.data.proposals.compute import compute_dataset_proposals
from detkit.data.proposals.edge_boxes import EdgeBoxesParams, edge_boxes, gradient_edges, rects_to_boxes
from detkit.data.proposals.methods import METHODS, params_from_options, search_proposals
from detkit.data.proposals.recall import RecallMeter, best_overlaps
from detkit.data.proposals.selective_search import SelectiveSearchParams
from detkit.data.proposals.with_proposals import WithProposals
from tests.data.proposals.drawn_images import HEIGHT, OBJECTS, WIDTH, draw_image


def _assert_valid(boxes: np.ndarray, height: int, width: int, max_boxes: int) -> None:
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert 1 <= len(boxes) <= max_boxes
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 3] <= height).all()
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)


@pytest.mark.parametrize("index", [0, 1])
def test_finds_the_drawn_rectangles_with_valid_boxes(index: int) -> None:
    objects = np.asarray(OBJECTS[index], dtype=np.float32)
    params = EdgeBoxesParams()
    boxes = edge_boxes(draw_image(OBJECTS[index], seed=index), params)
    _assert_valid(boxes, HEIGHT, WIDTH, params.max_boxes)
    best = best_overlaps(objects, boxes)
    assert (best >= 0.8).all(), best
    # Among the very first proposals too: the drawn objects are what the edges enclose best.
    assert (best_overlaps(objects, boxes[:30]) >= 0.7).all()


def test_recall_on_the_drawn_scenes_is_high() -> None:
    meter = RecallMeter()
    for seed, objects in enumerate(OBJECTS[:2] * 2):  # the empty scene only costs time here
        meter.update(np.asarray(objects, np.float32).reshape(-1, 4), edge_boxes(draw_image(objects, seed=seed)))
    summary = meter.summary()
    assert summary["recall@0.5"] == 1.0 and summary["recall@0.7"] == 1.0, summary


def test_deterministic_grey_input_and_max_boxes_keeps_the_best_scored() -> None:
    image = draw_image(OBJECTS[0], seed=0)
    every = edge_boxes(image)
    assert np.array_equal(every, edge_boxes(image.copy()))
    capped = edge_boxes(image, EdgeBoxesParams(max_boxes=5))
    assert len(capped) == 5 and np.array_equal(capped, every[:5])
    grey = np.ascontiguousarray(image[:, :, 0])
    _assert_valid(edge_boxes(grey), HEIGHT, WIDTH, EdgeBoxesParams().max_boxes)


def test_upscaling_maps_boxes_back_and_a_flat_image_gets_the_whole_image() -> None:
    image = draw_image(OBJECTS[1], seed=1)
    native = edge_boxes(image, EdgeBoxesParams(upscale_to=None))
    _assert_valid(native, HEIGHT, WIDTH, 300)
    # Searched as stored, every coordinate is a half pixel (edge-pixel centres, clipped to the image).
    assert np.array_equal(native * 2, np.round(native * 2))
    assert (best_overlaps(np.asarray(OBJECTS[1], np.float32), native) >= 0.7).all()
    flat = np.full((40, 50, 3), 128, np.uint8)
    assert np.array_equal(edge_boxes(flat), np.array([[0, 0, 50, 40]], np.float32))


def test_rects_to_boxes_by_hand() -> None:
    # (x, y, w, h) with x, y the 1-based first edge pixel: the box runs between edge-pixel centres.
    rects = np.array([[11, 13, 40, 48], [11, 13, 40, 48], [1, 1, 200, 10], [5, 5, 0, 3]])
    boxes = rects_to_boxes(rects, scale=(0.5, 0.5), image_size=(50, 60), max_boxes=10)
    # Halved; the repeat goes, the wide box is clipped at x = 60, the empty one is dropped.
    expected = np.array([[5.25, 6.25, 25.25, 30.25], [0.25, 0.25, 60, 5.25]], np.float32)
    assert np.array_equal(boxes, expected)
    assert np.array_equal(rects_to_boxes(rects, scale=(0.5, 0.5), image_size=(50, 60), max_boxes=1), expected[:1])
    nothing = rects_to_boxes(np.zeros((0, 4)), scale=(1.0, 1.0), image_size=(50, 60), max_boxes=10)
    assert np.array_equal(nothing, np.array([[0, 0, 60, 50]], np.float32))


def test_edge_map_is_thin_normalised_and_oriented_like_opencv_expects() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 200  # a vertical boundary: the gradient points along x, angle 0
    edges, orientation = gradient_edges(image, sigma=1.0)
    assert edges.dtype == np.float32 and orientation.dtype == np.float32
    assert edges.max() == pytest.approx(1.0) and edges.min() == 0.0
    rows = edges[5:35] > 0.5
    assert (rows.sum(axis=1) == 1).all()  # one pixel wide after the suppression
    assert set(np.flatnonzero(rows.any(axis=0))) <= {19, 20}
    assert np.allclose(orientation[5:35, 19:21], 0.0, atol=1e-3)
    edges, orientation = gradient_edges(np.ascontiguousarray(image.transpose(1, 0, 2)), sigma=1.0)
    assert np.allclose(orientation[19:21, 5:35], np.pi / 2, atol=1e-3)  # horizontal boundary: pi / 2
    diagonal = np.where(np.add.outer(np.arange(40), -np.arange(40)) > 0, 200, 0).astype(np.uint8)
    _, orientation = gradient_edges(diagonal, sigma=1.0)  # bright below the line y = x: normal (-1, 1)
    assert orientation[20, 19] == pytest.approx(3 * np.pi / 4, abs=1e-3)
    assert ((orientation >= 0) & (orientation < np.pi)).all()
    # A weak boundary stays weak: it is measured against a step of min_contrast, not blown up to 1.
    faint = np.full((40, 40, 3), 100, np.uint8)
    faint[:, 20:] = 110
    assert gradient_edges(faint, sigma=1.0, min_contrast=0.3)[0].max() < 0.2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"alpha": 1.0}, "alpha"),
        ({"beta": 0.0}, "beta"),
        ({"eta": 1.5}, "eta"),
        ({"max_boxes": 0}, "max_boxes"),
        ({"upscale_to": 8}, "upscale_to"),
        ({"min_contrast": 0.0}, "min_contrast"),
        ({"edge_sigma": -1.0}, "edge_sigma"),
        ({"max_aspect_ratio": 0.5}, "max_aspect_ratio"),
        ({"min_box_area": -1.0}, "min_box_area"),
    ],
)
def test_settings_are_validated(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EdgeBoxesParams(**settings)
    with pytest.raises(ValueError, match=message):
        params_from_options({"method": "edge_boxes", **settings})


def test_method_choice_unknown_method_and_unknown_settings() -> None:
    assert METHODS == ("selective_search", "edge_boxes")
    assert isinstance(params_from_options({}), SelectiveSearchParams)
    assert isinstance(params_from_options({"method": None, "strategy": "single"}), SelectiveSearchParams)
    # A config's wrapper carries every method's keys: each method reads its own.
    options = {"method": "edge_boxes", "strategy": "quality", "alpha": 0.7, "max_boxes": 50, "cache_dir": None}
    assert params_from_options(options) == EdgeBoxesParams(alpha=0.7, max_boxes=50)
    with pytest.raises(ValueError, match="edge_boxes"):
        params_from_options({"method": "edgeboxes"})
    with pytest.raises(TypeError, match="alfa"):
        params_from_options({"method": "edge_boxes", "alfa": 0.7}, strict=True)
    # What detkit.api reads a checkpoint's proposal settings with answers for both methods.
    assert params_from_options(options) == EdgeBoxesParams(alpha=0.7, max_boxes=50)
    assert isinstance(params_from_options({"strategy": "single"}), SelectiveSearchParams)


def test_cache_keys_differ_between_methods_and_numbers_are_coerced() -> None:
    edge, selective = EdgeBoxesParams(), SelectiveSearchParams()
    assert edge.key() != selective.key()
    assert edge.key() == EdgeBoxesParams().key()
    assert dataclasses.replace(edge, beta=0.8).key() != edge.key()
    assert "method=edge_boxes" in edge.describe()
    from_yaml = params_from_options({"method": "edge_boxes", "alpha": 1 / 2, "max_boxes": 300.0, "min_box_area": 64})
    assert from_yaml.key() == EdgeBoxesParams(alpha=0.5).key()
    assert params_from_options({"min_size": 6}).key() == SelectiveSearchParams(min_size=6.0).key()
    assert ProposalCache("/tmp/x", edge).folder != ProposalCache("/tmp/x", selective).folder


def test_cache_and_dataset_wrapper_search_with_edge_boxes(make_dataset, tmp_path) -> None:
    image = draw_image(OBJECTS[0], seed=0)
    params = EdgeBoxesParams(max_boxes=40)
    cache = ProposalCache(tmp_path, params)
    found = cache.get_or_search(hash_pixels(image), image)
    assert np.array_equal(found, edge_boxes(image, params))
    assert np.array_equal(search_proposals(image, params), found)
    dataset = WithProposals(
        make_dataset(), method="edge_boxes", max_boxes=40, strategy="single", cache_dir=tmp_path, num_workers=0,
        progress=False,
    )  # fmt: skip
    assert dataset.params == params and dataset.proposals.cache.folder == tmp_path / params.key()
    assert dataset.proposals.recall["recall@0.5"] == 1.0
    _, target = dataset[1]
    assert target["proposals"].shape[1] == 4 and 1 <= len(target["proposals"]) <= 40
    again = compute_dataset_proposals(make_dataset(), params, cache_dir=tmp_path, num_workers=0, progress=False)
    assert again.recall["cached_images"] == 3
    with pytest.raises(TypeError, match="alfa"):
        WithProposals(make_dataset(), method="edge_boxes", alfa=0.7, cache_dir=tmp_path, num_workers=0)
