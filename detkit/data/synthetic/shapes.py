"""The built-in synthetic detection data (``data=shapes``): generated once into a cache, read as COCO.

The cache lives in ``<root>/<hash of the parameters>/`` (``root`` defaults to
``$DETKIT_CACHE/shapes`` or ``~/.cache/detkit/shapes``) in the COCO layout of
``detkit.data.synthetic.shapes_writers``. It is written into a temporary folder, marked complete last and
renamed into place, so an interrupted run or several processes generating at once (DDP ranks)
never leave a half-written cache behind; a folder without the marker is regenerated.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from detkit.data.base import DetectionDataset, DetectionTransformFn
from detkit.data.formats.coco import load_coco_records
from detkit.data.synthetic.shapes_render import SHAPE_CLASSES, ShapesParams
from detkit.data.synthetic.shapes_writers import write_coco_layout
from detkit.data.synthetic.staging import COMPLETE_MARKER, staged_folder
from detkit.data.validation.problems import ProblemLog

logger = logging.getLogger(__name__)

__all__ = ["SHAPE_CLASSES", "ShapesDataset", "ShapesParams", "default_cache_root", "ensure_shapes"]


def default_cache_root() -> Path:
    """``$DETKIT_CACHE/shapes`` when DETKIT_CACHE is set, else ``~/.cache/detkit/shapes``."""
    cache = os.environ.get("DETKIT_CACHE")
    return (Path(cache) if cache else Path.home() / ".cache" / "detkit") / "shapes"


def ensure_shapes(params: ShapesParams, root: str | Path | None = None) -> Path:
    """The COCO-layout folder holding the data for ``params``, generating it first if needed."""
    base = Path(root) if root is not None else default_cache_root()
    folder = base / params.digest()
    if (folder / COMPLETE_MARKER).is_file():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    logger.info(
        "generating the shapes data (%d train + %d val images) into %s", params.num_train, params.num_val, folder
    )
    with staged_folder(folder, params, replace_complete=False) as staging:
        write_coco_layout(staging, params)
    logger.info("shapes data ready in %.1f s", time.perf_counter() - started)
    return folder


class ShapesDataset(DetectionDataset):
    """A split (``"train"`` or ``"val"``) of the synthetic shapes data, generated on first use.

    ``image_size`` is an int or (height, width); the other keywords are ``ShapesParams`` fields
    (changing any of them makes a new cache folder). Targets carry ``iscrowd`` (all False);
    ``class_names`` are ``SHAPE_CLASSES``, category ids 1..5.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        num_train: int = 1000,
        num_val: int = 200,
        image_size: int | Sequence[int] = 160,
        min_size: int = 12,
        max_size: int = 90,
        max_objects: int = 6,
        empty_fraction: float = 0.07,
        seed: int = 0,
        image_format: str = "jpg",
        transforms: DetectionTransformFn | None = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"ShapesDataset split must be 'train' or 'val', got {split!r}")
        self.params = ShapesParams(
            image_size=int(image_size) if isinstance(image_size, int | float) else tuple(int(v) for v in image_size),
            num_train=int(num_train),
            num_val=int(num_val),
            min_size=int(min_size),
            max_size=int(max_size),
            max_objects=int(max_objects),
            empty_fraction=float(empty_fraction),
            seed=int(seed),
            image_format=str(image_format),
        )
        self.folder = ensure_shapes(self.params, root)
        self.split = split
        ann_file = self.folder / "annotations" / f"instances_{split}.json"
        log = ProblemLog(str(ann_file), "error")
        records, class_names, category_ids = load_coco_records(ann_file, self.folder / split / "images", log)
        # Generated and written atomically: checking the image headers is enough (no decoding).
        super().__init__(records, class_names=class_names, category_ids=category_ids, transforms=transforms,
                         problems=log, verify_images=False)
