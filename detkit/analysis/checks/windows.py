"""Sliding windows against the proposal methods (selective search, Edge Boxes) + R-CNN: how many
boxes each scores per image, how many objects those boxes can find (recall at IoU 0.5 / 0.7, the
bound on mAP before box refinement), and test-time seconds per image, on the same validation images
(the R-CNN experiment's, with cached proposals of each method)."""

from __future__ import annotations

import copy
import time

import torch
from omegaconf import open_dict

from detkit.analysis.speed.rcnn import model_for, seconds_per_image
from detkit.data.image_files import read_image
from detkit.data.proposals.methods import METHODS, check_method, search_proposals
from detkit.data.proposals.recall import RecallMeter
from detkit.proposals.sliding_windows import SlidingWindows
from detkit.utils.machine import machine_description


def box_statistics(windows: SlidingWindows, samples: list) -> dict[str, dict]:
    """Boxes per image and recall of the window grid and of the samples' ``"proposals"``.

    ``samples``: ``(image: Tensor[3, H, W], target)`` pairs whose targets hold ``"boxes"`` and
    ``"proposals"`` (``Tensor[P, 4] xyxy``, input pixels). Returns ``{"windows": summary,
    "proposals": summary}`` with :meth:`RecallMeter.summary`'s keys (``boxes_per_image``,
    ``recall@0.5``, ``recall@0.7``, ...).
    """
    window_meter, proposal_meter = RecallMeter(), RecallMeter()
    for image, target in samples:
        height, width = image.shape[-2:]
        window_meter.update(target["boxes"], windows.grid(int(height), int(width)))
        proposal_meter.update(target["boxes"], target["proposals"])
    return {"windows": window_meter.summary(), "proposals": proposal_meter.summary()}


def proposal_statistics(samples: list) -> dict:
    """:meth:`RecallMeter.summary` of the samples' ``"proposals"`` against their ``"boxes"``."""
    meter = RecallMeter()
    for _, target in samples:
        meter.update(target["boxes"], target["proposals"])
    return meter.summary()


def search_seconds_per_image(records: list, params) -> float:
    """Mean seconds a proposal method (``params``) takes per stored image of ``records``, searched
    anew (not read from the cache), image decoding not counted."""
    images = [read_image(record.path) for record in records]
    started = time.perf_counter()
    for image in images:
        search_proposals(image, params)
    return (time.perf_counter() - started) / max(len(images), 1)


def with_method(cfg, method: str):
    """A copy of an experiment's config whose dataset proposals come from ``method``."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.data.proposals.wrapper.method = method
    return cfg


def compare_windows(
    windows: str, rcnn: str, *, images: int, warmup: int, device: str, methods: tuple[str, ...] = METHODS
) -> dict:
    """Statistics and speed of ``windows`` (a sliding-window checkpoint or experiment) against
    ``rcnn`` (an R-CNN checkpoint or experiment with precomputed proposals) on the R-CNN experiment's
    first ``images`` validation images, one image at a time. Each proposal method of ``methods``
    (the experiment's own and the others, with their default settings unless the experiment sets
    them) gets its boxes per image, recall, search seconds per image and R-CNN seconds per image."""
    from detkit.engine.build import build_dataset

    target_device = torch.device(device)
    rcnn_model, rcnn_cfg = model_for(rcnn)
    own = check_method(rcnn_cfg.data.proposals.wrapper.get("method"))
    methods = tuple(dict.fromkeys((own, *(check_method(method) for method in methods))))
    datasets = {method: build_dataset(with_method(rcnn_cfg, method), "val") for method in methods}
    dataset = datasets[own]
    window_model, _ = model_for(windows, num_classes=len(dataset.class_names))
    generator = getattr(window_model, "proposal_generator", None)
    if not isinstance(generator, SlidingWindows):
        raise ValueError(
            f"{windows} is not a sliding-window detector (its proposal generator is {type(generator).__name__})"
        )
    count = min(warmup + images, len(dataset))
    samples = [dataset[i] for i in range(count)]
    timed = samples[warmup:]
    (window_seconds, window_dets), (rcnn_seconds, rcnn_dets) = seconds_per_image(
        [window_model, rcnn_model], samples, target_device, warmup
    )
    stats = box_statistics(generator, timed)
    recall = {"windows": stats["windows"], own: stats["proposals"]}
    per_method = {}
    for method, method_set in datasets.items():
        method_samples = samples if method == own else [method_set[i] for i in range(count)]
        if method != own:
            recall[method] = proposal_statistics(method_samples[warmup:])
            seconds, _ = seconds_per_image([rcnn_model], method_samples, target_device, warmup)[0]
        else:
            seconds = rcnn_seconds
        per_method[method] = {
            "boxes_per_image": recall[method]["boxes_per_image"],
            "recall@0.5": recall[method]["recall@0.5"],
            "recall@0.7": recall[method]["recall@0.7"],
            "search_s_per_image": search_seconds_per_image(
                method_set.records[warmup:count], method_set.params
            ),
            "rcnn_s_per_image": seconds,
            "params": method_set.params.describe(),
        }
    return {
        "images": len(timed),
        "windows_per_image": stats["windows"]["boxes_per_image"],
        "proposals_per_image": stats["proposals"]["boxes_per_image"],
        "ratio": stats["windows"]["boxes_per_image"] / max(stats["proposals"]["boxes_per_image"], 1e-9),
        "proposal_method": own,
        "recall": recall,
        "methods": per_method,
        "sliding_window_s_per_image": window_seconds,
        "rcnn_s_per_image": rcnn_seconds,
        "detections": {"sliding_window": window_dets, "rcnn": rcnn_dets},
        "machine": machine_description(target_device),
        "windows": windows,
        "rcnn": rcnn,
        "rcnn_detector": type(rcnn_model).__name__,
    }
