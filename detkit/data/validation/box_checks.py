"""Validating the boxes of an annotation file, all at once, into a ``ProblemLog``.

A box is bad (an error, dropped under ``on_bad_data="skip"``) when a coordinate is NaN or
infinite, its width or height is zero or negative, it lies wholly outside its image, or its class
is unknown. A box reaching more than ``tolerance`` pixels outside its image is clipped to it and
reported as a warning: real data (COCO itself) has boxes a fraction of a pixel over the border
from rounding, which is noise; a box several pixels over usually means an annotation for another
image size, which the user should see, but the clipped box is still the object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from detkit.data.validation.problems import ProblemLog

# (where in the file, image file name) of box i, only computed for the few boxes reported.
Locate = Callable[[int], tuple[str | None, str | None]]


def box_text(box: object) -> str:
    """A box for a message: numbers compactly, anything malformed as the file wrote it."""
    if isinstance(box, str):
        return box
    try:
        return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"
    except (TypeError, ValueError):
        return repr(box)


class BoxChecker:
    """Checks boxes against their images and classes, reporting every bad one to ``log``."""

    def __init__(self, log: ProblemLog, *, tolerance: float = 1.0) -> None:
        self.log = log
        self.tolerance = float(tolerance)

    def check(
        self,
        boxes: np.ndarray,
        labels: np.ndarray,
        *,
        width: int | float | np.ndarray,
        height: int | float | np.ndarray,
        file: str,
        locate: Locate,
        file_boxes: Sequence[object] | np.ndarray | None = None,
        box_format: str = "xyxy pixels",
        class_text: Callable[[int], str] | None = None,
        unknown_kind: str = "unknown_class",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate ``boxes: [N, 4] xyxy`` (stored-image pixels) with ``labels: [N]`` (0 = unknown class).

        ``width`` / ``height`` are the image's, or per box ([N] arrays) to check a whole file at
        once. Returns the boxes clipped to their images (float32 [N, 4]) and the keep mask [N].
        For messages: ``file_boxes[i]`` is box i as the file writes it (in ``box_format``),
        ``class_text(i)`` how the file names its class (e.g. ``"category id 42 (not in ...)"``),
        and ``unknown_kind`` the kind an unknown class is reported as.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(labels).reshape(-1)
        widths = np.broadcast_to(np.asarray(width, dtype=np.float64), (len(boxes),))
        heights = np.broadcast_to(np.asarray(height, dtype=np.float64), (len(boxes),))
        clipped = boxes.copy()
        clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, widths[:, None])
        clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, heights[:, None])
        # Judged as stored (float32): a box 1e-6 px wide at x = 40 has width 0 there.
        stored, stored_clipped = boxes.astype(np.float32), clipped.astype(np.float32)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN compares False: those fail "finite" first
            finite = np.isfinite(stored).all(axis=1)
            sized = (stored[:, 2] > stored[:, 0]) & (stored[:, 3] > stored[:, 1])
            inside = (stored_clipped[:, 2] > stored_clipped[:, 0]) & (stored_clipped[:, 3] > stored_clipped[:, 1])
            overshoot = np.maximum(
                np.maximum(-boxes[:, 0], -boxes[:, 1]),
                np.maximum(boxes[:, 2] - widths, boxes[:, 3] - heights),
            )
        known = labels > 0
        keep = finite & sized & inside & known
        partly = keep & (overshoot > self.tolerance)
        # Only the (rare) reported boxes take the slow path.
        for i in np.flatnonzero(~keep | partly):
            where, image = locate(int(i))
            shown = box_text(file_boxes[i] if file_boxes is not None else boxes[i])
            box = f"box {shown} ({box_format})"
            size = f"{widths[i]:g}x{heights[i]:g}"
            if not known[i]:
                what = class_text(int(i)) if class_text is not None else f"label {labels[i]}"
                self.log.add(unknown_kind, file, f"{what}; {box}", where=where, image=image)
            if not finite[i]:
                self.log.add("non_finite_coordinate", file, f"a coordinate is NaN or infinite: {box}",
                             where=where, image=image)
            elif not sized[i]:
                w, h = stored[i, 2] - stored[i, 0], stored[i, 3] - stored[i, 1]
                self.log.add("bad_box_size", file, f"zero or negative size (width {w:g}, height {h:g} px): {box}",
                             where=where, image=image)
            elif not inside[i]:
                self.log.add("box_outside_image", file, f"{box} lies wholly outside the {size} image",
                             where=where, image=image)
            elif partly[i]:
                self.log.add("box_partly_outside", file,
                             f"{box} reaches {overshoot[i]:.3g} px outside the {size} image; clipped to "
                             f"{box_text(clipped[i])} (xyxy pixels)", where=where, image=image)
        self.log.dropped_boxes += int((~keep).sum())
        return stored_clipped, keep
