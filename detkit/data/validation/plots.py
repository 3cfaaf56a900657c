"""Pictures of a dataset's boxes for ``detkit check``: sizes, aspect ratios, boxes per class (PNG).

Drawn with matplotlib's object API (``Figure``, no pyplot), so nothing depends on a display or on
global backend state. Sizes are in stored-image pixels, as annotated, before any resizing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detkit.data.base import ImageRecord
from detkit.data.validation.summary import MEDIUM_AREA, SMALL_AREA
from detkit.utils.figures import new_figure


def _no_boxes(axes) -> None:
    axes.text(0.5, 0.5, "no boxes", ha="center", va="center", fontsize=14, transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def _log_bins(values: np.ndarray, count: int = 40) -> np.ndarray:
    low, high = max(float(values.min()), 1e-3), max(float(values.max()), 1e-3)
    return np.geomspace(low / 1.05, high * 1.05, count + 1)


def _log_ticks(axes, values: np.ndarray, candidates: list[float], text: str, scale: float = 1.0) -> None:
    """A log x axis with plain-number ticks (``candidates``, or 1.5 times them as well for a narrow
    range, within the data's range), no minor ones; counts on y in whole numbers."""
    from matplotlib.ticker import MaxNLocator, NullLocator

    axes.set_xscale("log")
    low, high = float(values.min()) / 1.1, float(values.max()) * 1.1
    ticks = [t for t in candidates if low <= t <= high]
    if len(ticks) < 3:
        ticks = sorted(t for c in candidates for t in (c, 1.5 * c) if low <= t <= high) or [float(np.median(values))]
    axes.set_xticks(ticks, [text.format(t * scale) for t in ticks])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))


def draw_box_sizes(records: list[ImageRecord], path: Path, title: str) -> Path:
    """Two histograms: box size sqrt(w h) in pixels (COCO's small / medium / large limits marked),
    and box size relative to its image, sqrt(w h / (W H))."""
    boxes = [r.boxes for r in records]
    sizes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
    side = np.sqrt((sizes[:, 2] - sizes[:, 0]) * (sizes[:, 3] - sizes[:, 1]))
    image_side = (
        np.concatenate([np.full(len(r.boxes), np.sqrt(r.width * r.height)) for r in records]) if records else side
    )
    figure = new_figure(11, 4.2, dpi=110)
    absolute, relative = figure.subplots(1, 2)
    figure.suptitle(f"{title}: box sizes ({len(side)} boxes)", fontsize=13)
    if len(side) == 0:
        _no_boxes(absolute)
        _no_boxes(relative)
    else:
        absolute.hist(side, bins=_log_bins(side), color="#4878a8", edgecolor="white", linewidth=0.5)
        _log_ticks(absolute, side, [2.0**k for k in range(0, 14)], "{:g}")
        absolute.set_ylim(0, absolute.get_ylim()[1] * 1.12)  # room for the size-class names
        low, high = absolute.get_xlim()
        limits = [low, np.sqrt(SMALL_AREA), np.sqrt(MEDIUM_AREA), high]
        for index, name in enumerate(("small", "medium", "large")):
            left, right = max(limits[index], low), min(limits[index + 1], high)
            if right <= left:
                continue
            if index:
                absolute.axvline(limits[index], color="#c44e52", linestyle="--", linewidth=1.2)
            if np.log(right / left) < 0.12 * np.log(high / low):
                continue  # too narrow a sliver to name
            absolute.text(np.sqrt(left * right), 0.98, name, color="#c44e52", ha="center", va="top", fontsize=9,
                          transform=absolute.get_xaxis_transform(),
                          bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
        absolute.set_xlabel("box size sqrt(width x height), pixels (log scale; COCO's size classes in red)")
        absolute.set_ylabel("boxes")
        fraction = side / image_side
        relative.hist(fraction, bins=_log_bins(fraction), color="#55a868", edgecolor="white", linewidth=0.5)
        _log_ticks(relative, fraction, [m * 10.0**e for e in range(-4, 1) for m in (1, 2, 5)], "{:.3g}%", scale=100)
        relative.set_ylim(0, relative.get_ylim()[1] * 1.12)
        relative.set_xlabel("box size / image size, sqrt(w h / (W H)) (log scale)")
        relative.set_ylabel("boxes")
    for axes in (absolute, relative):
        axes.grid(alpha=0.3)
    figure.savefig(path)
    return path


def draw_box_aspect(records: list[ImageRecord], path: Path, title: str) -> Path:
    """Histogram of the box aspect ratio w/h on a log2 axis (1:1 in the middle)."""
    from matplotlib.ticker import MaxNLocator

    boxes = [r.boxes for r in records]
    sizes = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
    ratio = np.log2((sizes[:, 2] - sizes[:, 0]) / (sizes[:, 3] - sizes[:, 1]))
    figure = new_figure(7.5, 4.2, dpi=110)
    axes = figure.subplots()
    axes.set_title(f"{title}: box aspect ratio ({len(ratio)} boxes)", fontsize=13)
    if len(ratio) == 0:
        _no_boxes(axes)
    else:
        reach = max(2, int(np.ceil(np.abs(ratio).max())))
        step = 1 / 8  # bins centred on the ticks, so that square boxes sit on 1:1
        axes.hist(ratio, bins=np.arange(-reach - step / 2, reach + step, step), color="#8172b2", edgecolor="white",
                  linewidth=0.5)
        ticks = np.arange(-reach, reach + 1)
        axes.set_xticks(ticks, [f"1:{2 ** -t:g}" if t < 0 else f"{2 ** t:g}:1" for t in ticks])
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("width : height (log scale; 1:2 is twice as tall as wide)")
        axes.set_ylabel("boxes")
        axes.grid(alpha=0.3)
    figure.savefig(path)
    return path


def draw_boxes_per_class(boxes_per_class: dict[str, int], path: Path, title: str) -> Path:
    """Horizontal bars, one per class in label order, with the count at the end of each bar;
    classes without a box are named in red."""
    from matplotlib.ticker import MaxNLocator

    names, counts = list(boxes_per_class), list(boxes_per_class.values())
    figure = new_figure(8, max(2.5, 0.9 + 0.28 * len(names)), dpi=110)
    axes = figure.subplots()
    axes.set_title(f"{title}: boxes per class ({sum(counts)} boxes)", fontsize=13)
    positions = np.arange(len(names))
    axes.barh(positions, counts, color="#4878a8")
    axes.set_yticks(positions, names)
    axes.invert_yaxis()  # label 1 at the top
    for position, count, label in zip(positions, counts, axes.get_yticklabels(), strict=True):
        axes.text(count, position, f" {count}", va="center", fontsize=9)
        if count == 0:
            label.set_color("#c44e52")
    axes.set_xlim(0, max(max(counts, default=0), 1) * 1.15)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("boxes")
    axes.grid(axis="x", alpha=0.3)
    figure.savefig(path)
    return path


def draw_check_pictures(records: list[ImageRecord], boxes_per_class: dict[str, int], folder: Path,
                        prefix: str, title: str) -> list[Path]:
    """The three pictures, ``<folder>/<prefix>{box_sizes,box_aspect,boxes_per_class}.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        draw_box_sizes(records, folder / f"{prefix}box_sizes.png", title),
        draw_box_aspect(records, folder / f"{prefix}box_aspect.png", title),
        draw_boxes_per_class(boxes_per_class, folder / f"{prefix}boxes_per_class.png", title),
    ]
