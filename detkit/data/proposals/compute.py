"""Proposals (selective search or Edge Boxes) for every image of a dataset: cached, in parallel, with recall.

``compute_dataset_proposals`` hashes each image file, reads the cached proposals of the ones
already searched with the same parameters, and runs the search for the rest in a process pool
(one OpenCV thread per process, all cores busy) behind a progress bar. It reports recall at IoU
0.5 / 0.7 and boxes per image against the dataset's ground truth (crowd and "difficult" boxes,
which evaluation ignores, are left out).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from tqdm import tqdm

from detkit.data.image_files import read_image
from detkit.data.proposals.cache import ProposalCache, image_file_key
from detkit.data.proposals.methods import ProposalParams, search_proposals
from detkit.data.proposals.recall import RecallMeter

logger = logging.getLogger(__name__)


@dataclass
class DatasetProposals:
    """Where the proposals of each image of a dataset are: ``content_hashes[i]`` keys image ``i``
    (dataset index) in ``cache``. ``recall`` is ``RecallMeter.summary()`` plus timings."""

    cache: ProposalCache
    content_hashes: list[str]
    image_ids: list[int]
    recall: dict = field(default_factory=dict)

    def boxes(self, index: int) -> np.ndarray:
        """``[P, 4]`` float32 xyxy proposals of image ``index`` in stored-image pixels."""
        boxes = self.cache.get(self.content_hashes[index])
        if boxes is None:
            raise FileNotFoundError(
                f"proposals of image_id {self.image_ids[index]} are missing from {self.cache.folder} "
                "(was the cache cleared while training?); run tools/proposals.py again"
            )
        return boxes


def image_records(dataset) -> list:
    """The ``ImageRecord`` list of a detkit dataset (proposals are searched on the stored files)."""
    records = getattr(dataset, "records", None)
    if records is None:
        raise TypeError(
            f"{type(dataset).__name__} has no image records; precomputed proposals need a detkit "
            "dataset (COCO, VOC, YOLO or shapes: detkit.data.base.DetectionDataset)"
        )
    return records


def _evaluated_gt(record) -> np.ndarray:
    keep = np.ones(len(record.boxes), dtype=bool)
    for flags in (record.iscrowd, record.difficult):
        if flags is not None:
            keep &= ~np.asarray(flags, dtype=bool)
    return record.boxes[keep]


# Process-pool workers get the parameters once, through the initializer.
_worker_cache: ProposalCache | None = None


def _init_worker(cache_root: str, params: ProposalParams, pooled: bool) -> None:
    global _worker_cache
    if pooled:
        cv2.setNumThreads(1)  # the pool already keeps every core busy
    _worker_cache = ProposalCache(cache_root, params)


def _search_and_store(task: tuple[int, str, str, str]) -> tuple[int, np.ndarray]:
    index, path, content_hash, source = task
    assert _worker_cache is not None
    boxes = search_proposals(read_image(path, source=source), _worker_cache.params)
    _worker_cache.put(content_hash, boxes)
    return index, boxes


def compute_dataset_proposals(
    dataset,
    params: ProposalParams,
    *,
    cache_dir: str | os.PathLike | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    description: str = "proposals",
    on_image: Callable[[int, np.ndarray], None] | None = None,
) -> DatasetProposals:
    """Proposals for every image of ``dataset`` (a detkit dataset with ``records``).

    ``num_workers``: processes for the images not yet cached (``None``: all cores; 0 or 1: this
    process). ``on_image(index, boxes)`` is called for every image once its ``[P, 4]`` stored-pixel
    proposals are known (cached or new), e.g. to keep them in memory.
    """
    records = image_records(dataset)
    cache = ProposalCache(cache_dir, params)
    started = time.perf_counter()
    meter = RecallMeter()
    hashes: list[str] = []
    missing: list[tuple[int, str, str, str]] = []
    for index, record in enumerate(
        tqdm(records, desc=f"{description} (cache)", disable=not progress, leave=False)
    ):
        content_hash = image_file_key(record.path)
        hashes.append(content_hash)
        boxes = cache.get(content_hash)
        if boxes is None:
            missing.append((index, str(record.path), content_hash, record.annotation_file))
            continue
        meter.update(_evaluated_gt(record), boxes)
        if on_image is not None:
            on_image(index, boxes)
    cached = len(records) - len(missing)
    searched_at = time.perf_counter()
    if missing:
        workers = (os.cpu_count() or 1) if num_workers is None else max(1, int(num_workers))
        workers = min(workers, len(missing))
        logger.info(
            "%s: %d of %d images are not cached yet (%s); searching with %d process(es), cache %s",
            description,
            len(missing),
            len(records),
            params.describe(),
            workers,
            cache.folder,
        )
        bar = tqdm(total=len(missing), desc=description, disable=not progress, unit="img")
        try:
            for index, boxes in _run(missing, cache, workers):
                meter.update(_evaluated_gt(records[index]), boxes)
                if on_image is not None:
                    on_image(index, boxes)
                bar.update(1)
        finally:
            bar.close()
    finished = time.perf_counter()
    recall = meter.summary()
    recall.update(
        cached_images=cached,
        searched_images=len(missing),
        seconds=finished - started,
        search_seconds=finished - searched_at,
        cache_folder=str(cache.folder),
    )
    return DatasetProposals(
        cache=cache, content_hashes=hashes, image_ids=[r.image_id for r in records], recall=recall
    )


def _run(tasks: list[tuple[int, str, str, str]], cache: ProposalCache, workers: int):
    if workers <= 1:
        _init_worker(str(cache.root), cache.params, False)
        yield from map(_search_and_store, tasks)
        return
    # spawn, not fork: a forked child inherits locks held by the parent's other threads (torch's
    # and OpenCV's thread pools, logging) and can hang on them forever; this happened in tests.
    context = multiprocessing.get_context("spawn")
    with context.Pool(
        workers, initializer=_init_worker, initargs=(str(cache.root), cache.params, True)
    ) as pool:
        # Small chunks keep the progress bar live; unordered results keep every worker busy.
        yield from pool.imap_unordered(_search_and_store, tasks, chunksize=4)


def format_recall(recall: dict) -> str:
    """One human-readable line of a ``compute_dataset_proposals(...).recall`` dict."""

    def percent(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f}%"

    return (
        f"{recall['images']} images, {recall['boxes_per_image']:.1f} boxes/image "
        f"(ground truth {recall['gt_per_image']:.2f}/image), recall@0.5 {percent(recall.get('recall@0.5'))}, "
        f"recall@0.7 {percent(recall.get('recall@0.7'))}, mean best IoU "
        f"{'n/a' if recall['mean_best_iou'] is None else format(recall['mean_best_iou'], '.3f')}; "
        f"{recall['cached_images']} from cache, {recall['searched_images']} searched, {recall['seconds']:.2f} s"
    )
