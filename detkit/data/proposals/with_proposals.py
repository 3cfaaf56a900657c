"""A dataset wrapper that adds precomputed proposals (selective search or Edge Boxes) to every target.

``WithProposals(dataset, strategy="fast", ...)`` or ``WithProposals(dataset, method="edge_boxes", ...)``
finds (or computes and caches) the proposals of every image at construction, then ``dataset[i]``
yields the wrapped dataset's ``(image, target)`` with ``target["proposals"]: Tensor[P, 4] xyxy`` in the
transformed image's pixels.

Proposals go through the dataset's own transform together with the ground-truth boxes, so a
flip, crop or resize moves them exactly as it moves the image; proposals a crop cuts away are
dropped by the same rules as ground truth. One caveat follows from that: a "bbox-safe" crop keeps
every box inside, and proposals usually span the whole image, so with proposals such crops
rarely crop (the Fast R-CNN and R-CNN recipes use flips only, as the papers did).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from detkit.data.proposals.compute import compute_dataset_proposals, format_recall
from detkit.data.proposals.methods import params_from_options

logger = logging.getLogger(__name__)


class ProposalAwareTransform:
    """Runs a detkit transform on ground truth + proposals at once and splits them again.

    The wrapped dataset calls it with ``(image, boxes, labels)`` where ``labels`` are the box
    indices ``0..N-1``; proposals ride along with negative indices ``-1..-P`` (their rank), so
    afterwards the two are told apart and the proposals keep their rank order.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.pending: np.ndarray | None = None
        self.result: np.ndarray | None = None

    def __call__(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray):
        proposals = self.pending if self.pending is not None else np.zeros((0, 4), np.float32)
        self.pending = None
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels).reshape(-1)
        rank_labels = -1 - np.arange(len(proposals), dtype=np.int64)
        all_boxes = np.concatenate((boxes, proposals.astype(np.float32)))
        all_labels = np.concatenate((labels.astype(np.int64), rank_labels))
        image, out_boxes, out_labels, scale = self.inner(image, all_boxes, all_labels)
        out_boxes = np.asarray(out_boxes, dtype=np.float32).reshape(-1, 4)
        out_labels = np.asarray(out_labels, dtype=np.int64).reshape(-1)
        is_gt = out_labels >= 0
        order = np.argsort(-out_labels[~is_gt], kind="stable")
        self.result = out_boxes[~is_gt][order]
        # Keep the transform's box statistics (dropped ground truth) about ground truth only.
        if hasattr(self.inner, "seen_boxes") and hasattr(self.inner, "dropped_boxes"):
            self.inner.seen_boxes -= len(proposals)
            self.inner.dropped_boxes -= len(proposals) - len(self.result)
        return image, out_boxes[is_gt], out_labels[is_gt], scale

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class WithProposals(Dataset):
    """``dataset`` (a detkit dataset: ``records``, ``transforms``) plus ``target["proposals"]``.

    ``method``: ``selective_search`` (default) or ``edge_boxes``. ``settings``: the method's
    keywords (``SelectiveSearchParams`` or ``EdgeBoxesParams`` fields); a config's wrapper section
    may carry both methods' keywords, and each method reads its own, but a keyword no method
    reads is an error. ``cache_dir``: the proposal cache (``None``: ``$DETKIT_PROPOSAL_CACHE`` or
    ``~/.cache/detkit/proposals``). ``num_workers``: processes for images not cached yet
    (``None``: all cores). ``split`` only names the split in logs. Everything else
    (``class_names``, ``coco_ground_truth()``, ...) is the wrapped dataset's.
    """

    def __init__(
        self,
        dataset,
        *,
        split: str | None = None,
        method: str = "selective_search",
        cache_dir: str | os.PathLike | None = None,
        num_workers: int | None = None,
        progress: bool = True,
        **settings,
    ) -> None:
        self.dataset = dataset
        self.split = split
        self.params = params_from_options(dict(settings, method=method), strict=True)
        name = f"{split} proposals" if split else "proposals"

        def compute(show_progress: bool):
            return compute_dataset_proposals(
                dataset,
                self.params,
                cache_dir=cache_dir,
                num_workers=num_workers,
                progress=show_progress,
                description=name,
            )

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Rank 0 searches (on all cores) while the others wait, then they read its cache.
            if dist.get_rank() == 0:
                self.proposals = compute(progress)
            dist.barrier()
            if dist.get_rank() != 0:
                self.proposals = compute(False)
        else:
            self.proposals = compute(progress)
        logger.info("%s: %s", name, format_recall(self.proposals.recall))
        transforms = getattr(dataset, "transforms", None)
        self._transform: ProposalAwareTransform | None = None
        if transforms is not None:
            self._transform = ProposalAwareTransform(transforms)
            dataset.transforms = self._transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        proposals = self.proposals.boxes(index)
        if self._transform is None:
            image, target = self.dataset[index]
        else:
            # One item at a time per process (DataLoader workers are processes), so handing the
            # proposals to the transform through an attribute cannot mix up two images.
            self._transform.pending = proposals
            image, target = self.dataset[index]
            proposals = self._transform.result
            self._transform.result = None
        if int(target["image_id"]) != self.proposals.image_ids[index]:
            raise RuntimeError(
                f"{type(self.dataset).__name__}[{index}] is image_id {target['image_id']} but its proposals "
                f"were computed for image_id {self.proposals.image_ids[index]}; the dataset changed order"
            )
        target["proposals"] = torch.from_numpy(
            np.ascontiguousarray(proposals, dtype=np.float32).reshape(-1, 4)
        )
        return image, target

    def __getattr__(self, name: str):
        # Only reached for attributes WithProposals lacks; guarded so unpickling cannot recurse.
        if name in ("dataset", "__setstate__", "__getstate__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)
