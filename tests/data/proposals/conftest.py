"""Fixtures: the tiny on-disk dataset of ``drawn_images``."""

from __future__ import annotations

from pathlib import Path

import pytest

from detkit.data.base import DetectionDataset, ImageRecord
from tests.data.proposals.drawn_images import write_dataset


@pytest.fixture
def tiny_records(tmp_path: Path) -> list[ImageRecord]:
    return write_dataset(tmp_path / "images")


@pytest.fixture
def make_dataset(tiny_records):
    def make(transforms=None) -> DetectionDataset:
        return DetectionDataset(
            list(tiny_records), class_names=["box"], category_ids=[1], transforms=transforms
        )

    return make
