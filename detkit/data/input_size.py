"""The network input size a recipe picks for a dataset: ``data.input_size: auto``.

A recipe tuned on one dataset states the input-size range it works in
(``data.auto_input_size: {min, max, multiple}``); with ``auto`` the run letterboxes images at the
data's own resolution — the median longer image side of the training split — rounded up to a
multiple of the network's largest stride and kept inside the range. Images of a few hundred
pixels then keep their small objects, and very large images cannot make a run unaffordable. The
size is chosen once, from the training split, logged, and written into the run's config (and so
into its checkpoints) as a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def choose_input_size(longer_sides: Iterable[int], *, min_size: int, max_size: int, multiple: int = 32) -> int:
    """The median of ``longer_sides`` (pixels), rounded up to ``multiple``, clamped to
    ``[min_size, max_size]`` (both rounded to ``multiple`` as well)."""
    sides = np.asarray(list(longer_sides), dtype=np.float64)
    if multiple < 1 or min_size < 1 or max_size < min_size:
        raise ValueError(f"auto input size needs 1 <= min <= max and multiple >= 1, got min={min_size} "
                         f"max={max_size} multiple={multiple}")
    low = math.ceil(min_size / multiple) * multiple
    high = max(math.floor(max_size / multiple) * multiple, low)
    if sides.size == 0:
        return low
    wanted = math.ceil(float(np.median(sides)) / multiple) * multiple
    return int(min(max(wanted, low), high))


def dataset_longer_sides(dataset) -> list[int]:
    """The longer side of every image of a detkit dataset (from its records: no image is read)."""
    return [max(int(record.width), int(record.height)) for record in dataset.records]
