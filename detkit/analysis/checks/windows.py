"""Sliding windows against selective search + R-CNN: how many boxes each scores per image, how many
objects those boxes can find (recall at IoU 0.5 / 0.7, the bound on mAP before box refinement), and
test-time seconds per image, on the same validation images (the R-CNN experiment's, with its
cached proposals)."""

from __future__ import annotations

import torch

from detkit.analysis.speed.rcnn import model_for, seconds_per_image
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


def compare_windows(windows: str, rcnn: str, *, images: int, warmup: int, device: str) -> dict:
    """Statistics and speed of ``windows`` (a sliding-window checkpoint or experiment) against
    ``rcnn`` (an R-CNN checkpoint or experiment with precomputed proposals) on the R-CNN experiment's
    first ``images`` validation images, one image at a time."""
    from detkit.engine.build import build_dataset

    target_device = torch.device(device)
    rcnn_model, rcnn_cfg = model_for(rcnn)
    dataset = build_dataset(rcnn_cfg, "val")
    window_model, _ = model_for(windows, num_classes=len(dataset.class_names))
    generator = getattr(window_model, "proposal_generator", None)
    if not isinstance(generator, SlidingWindows):
        raise ValueError(
            f"{windows} is not a sliding-window detector (its proposal generator is {type(generator).__name__})"
        )
    samples = [dataset[i] for i in range(min(warmup + images, len(dataset)))]
    timed = samples[warmup:]
    (window_seconds, window_dets), (rcnn_seconds, rcnn_dets) = seconds_per_image(
        [window_model, rcnn_model], samples, target_device, warmup
    )
    stats = box_statistics(generator, timed)
    return {
        "images": len(timed),
        "windows_per_image": stats["windows"]["boxes_per_image"],
        "proposals_per_image": stats["proposals"]["boxes_per_image"],
        "ratio": stats["windows"]["boxes_per_image"] / max(stats["proposals"]["boxes_per_image"], 1e-9),
        "recall": {"windows": stats["windows"], "selective_search": stats["proposals"]},
        "sliding_window_s_per_image": window_seconds,
        "rcnn_s_per_image": rcnn_seconds,
        "detections": {"sliding_window": window_dets, "rcnn": rcnn_dets},
        "machine": machine_description(target_device),
        "windows": windows,
        "rcnn": rcnn,
    }
