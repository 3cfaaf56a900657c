"""Shared fixtures: one small synthetic shapes dataset written in the COCO, VOC and YOLO layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from detkit.data.synthetic.shapes_render import ShapesParams
from detkit.data.synthetic.shapes_writers import write_shapes

# Non-square on purpose: every loader must keep width and height apart.
SMALL_PARAMS = ShapesParams(image_size=(72, 96), num_train=10, num_val=6, min_size=8, max_size=48, seed=3)


@pytest.fixture(scope="session")
def small_shapes_params() -> ShapesParams:
    return SMALL_PARAMS


@pytest.fixture(scope="session")
def shapes_layouts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"coco": root, "voc": root, "yolo": data.yaml} of the same generated images and boxes."""
    base = tmp_path_factory.mktemp("shapes_layouts")
    return {layout: write_shapes(base / layout, SMALL_PARAMS, layout) for layout in ("coco", "voc", "yolo")}
