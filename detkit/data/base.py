"""What every detkit dataset shares: image records, box validation, image reading, the transform call.

A loader (COCO, VOC, YOLO, shapes) only parses its annotation format into ``ImageRecord`` s, with
boxes already converted to ``xyxy`` float32 pixels of the stored image and labels in ``1..C``;
``DetectionDataset`` does the rest. ``dataset[i]`` returns ``(image, target)``:

- ``image``: Tensor[3, H, W] float32 in [0, 1] (RGB), after the transform when one is given;
- ``target``: a ``detkit.structures.Target`` with ``boxes`` Tensor[N, 4] xyxy in the transformed
  image's pixels, ``labels`` Tensor[N] int64, ``image_id`` int, ``iscrowd`` / ``difficult``
  Tensor[N] bool where the format has them, ``orig_size`` Tensor[2] int64 (h, w) of the stored
  image and ``scale`` Tensor[2] float32 (sx, sy) from stored to transformed pixels.

torch is imported when the first item is read, not when this module is: the loaders build on it,
and the data-side tools that only need records (``tools/proposals.py``, ``tools/check_dataset.py``)
then start in well under a second instead of paying torch's few-second import. A plain
map-style class (``__len__`` + ``__getitem__``) is all ``torch.utils.data.DataLoader`` needs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

    from detkit.structures import Target

logger = logging.getLogger(__name__)

INVALID_BOX_POLICIES = ("error", "skip")

# transform(image HxWx3 uint8, boxes [N,4] xyxy, labels [N]) -> (image, boxes, labels, (sx, sy))
DetectionTransformFn = Callable[
    [np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float]]
]


@dataclass
class ImageRecord:
    """One image of a split as parsed from its annotation files.

    ``boxes``: float32 [N, 4] xyxy in stored-image pixels, already validated and clipped;
    ``labels``: int64 [N] in 1..C; ``iscrowd`` / ``difficult``: bool [N] or None where the format
    has no such flag; ``areas``: float32 [N] the annotation's own area (COCO segment area) or None
    to use the box area; ``annotation_file``: where the boxes came from (for error messages).
    """

    path: Path
    file_name: str
    image_id: int
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    annotation_file: str
    iscrowd: np.ndarray | None = None
    difficult: np.ndarray | None = None
    areas: np.ndarray | None = None


def read_image(path: Path | str, *, source: str | None = None) -> np.ndarray:
    """Read an image file as an RGB uint8 array [H, W, 3], the pixels exactly as stored.

    EXIF orientation is ignored on purpose: annotation tools (and PIL, which reports the sizes
    the annotation files are checked against) work on the stored pixel grid.
    """
    path = Path(path)
    where = f" (listed in {source})" if source else ""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}{where}") from None
    except OSError as error:
        raise OSError(f"cannot read image file {path}{where}: {error}") from error
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode image file {path}{where}: the file is empty, corrupt or not an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_size_from_header(path: Path, *, source: str | None = None) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only (no decoding)."""
    from PIL import Image, UnidentifiedImageError

    where = f" (listed in {source})" if source else ""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}{where}") from None
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image file {path}{where}: {error}") from error


def _box_text(box: object) -> str:
    """A box for a message: numbers compactly, anything malformed as the file wrote it."""
    if isinstance(box, str):
        return box
    try:
        return "[" + ", ".join(f"{float(v):g}" for v in box) + "]"
    except (TypeError, ValueError):
        return repr(box)


class BoxChecker:
    """Validates the boxes of one annotation source under the ``invalid_boxes`` policy.

    Invalid: a non-finite coordinate, ``x2 <= x1`` or ``y2 <= y1``, a box entirely outside the
    image, an unknown class (label 0 here), or anything a loader rejects while parsing. With
    ``"error"`` the first one raises ValueError naming the file, the box and the fix; with
    ``"skip"`` it is dropped, counted and listed in ``problems``, and ``log_summary`` warns once.
    Boxes partly outside the image are clipped to it, which is normal and not reported.
    """

    def __init__(self, policy: str, source: str) -> None:
        if policy not in INVALID_BOX_POLICIES:
            raise ValueError(f"invalid_boxes must be one of {INVALID_BOX_POLICIES}, got {policy!r}")
        self.policy = policy
        self.source = source
        self.skipped = 0
        self.problems: list[dict] = []

    def reject(
        self,
        *,
        image: str,
        box: object,
        reason: str,
        annotation: str | None = None,
        box_format: str = "xyxy pixels",
    ) -> None:
        """Report one bad annotation: raise under ``"error"``, record it under ``"skip"``."""
        annotation = annotation or self.source
        box_text = _box_text(box)
        if self.policy == "error":
            raise ValueError(
                f"{annotation}: invalid box {box_text} ({box_format}) for image '{image}': {reason}. "
                "Fix the annotation, or pass invalid_boxes='skip' to drop such boxes "
                "(they are counted and logged)."
            )
        self.skipped += 1
        self.problems.append({"file": image, "annotation": annotation, "box": box_text, "problem": reason})

    def check(
        self,
        boxes: np.ndarray,
        labels: np.ndarray,
        *,
        width: int | np.ndarray,
        height: int | np.ndarray,
        image: str | Sequence[str],
        class_repr: Sequence[object] | None = None,
        annotation: str | None = None,
        file_boxes: Sequence[object] | None = None,
        box_format: str = "xyxy pixels",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Validate ``boxes: [N, 4] xyxy`` (stored pixels) with ``labels: [N]`` (0 = unknown class).

        ``width``, ``height`` and ``image`` (the image's file name) are one image's, or given per box
        ([N] arrays, a list of N names) to check a whole annotation file at once. Returns the
        clipped boxes (float32) and a bool keep mask [N]. For messages only: ``class_repr[i]`` is
        how the file spelled box i's class, ``file_boxes[i]`` the box as the file writes it, in
        ``box_format``.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(labels).reshape(-1)
        widths = np.broadcast_to(np.asarray(width, dtype=np.float64), (len(boxes),))
        heights = np.broadcast_to(np.asarray(height, dtype=np.float64), (len(boxes),))
        clipped = boxes.copy()
        clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, widths[:, None])
        clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, heights[:, None])
        with np.errstate(invalid="ignore"):  # NaN compares False: those boxes fail "finite" first
            finite = np.isfinite(boxes).all(axis=1)
            ordered = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            inside = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
        keep = finite & ordered & inside & (labels > 0)
        for i in np.flatnonzero(~keep):  # only the (rare) bad boxes take the slow path
            if not finite[i]:
                reason = "a coordinate is missing or not a finite number"
            elif not ordered[i]:
                reason = "x2 <= x1 or y2 <= y1 (zero or negative width or height)"
            elif not inside[i]:
                reason = f"the box lies entirely outside the {widths[i]:g}x{heights[i]:g} image"
            else:
                reason = f"unknown class {class_repr[i] if class_repr is not None else labels[i]!r}"
            shown = file_boxes[i] if file_boxes is not None else boxes[i]
            name = image if isinstance(image, str) else image[i]
            self.reject(image=name, box=shown, reason=reason, annotation=annotation, box_format=box_format)
        return clipped.astype(np.float32), keep

    def log_summary(self) -> None:
        if not self.skipped:
            return
        files = list(dict.fromkeys(p["file"] for p in self.problems))
        shown = ", ".join(files[:5]) + (", ..." if len(files) > 5 else "")
        logger.warning(
            "%s: skipped %d invalid box(es) in %d image(s) (invalid_boxes='skip'): %s; "
            "tools/check_dataset.py lists every one",
            self.source, self.skipped, len(files), shown,
        )


class DetectionDataset:
    """A detection split held as ``ImageRecord`` s; the common part of every detkit loader.

    ``class_names[i]`` is label ``i + 1``; ``category_ids[i]`` is the dataset's own id for label
    ``i + 1`` (what ``coco_ground_truth`` and detection results use).
    """

    def __init__(
        self,
        records: list[ImageRecord],
        *,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        transforms: DetectionTransformFn | None = None,
        problems: list[dict] | None = None,
    ) -> None:
        if len(class_names) != len(category_ids):
            raise ValueError("class_names and category_ids must have the same length")
        self.records = records
        self.class_names = list(class_names)
        self.category_ids = [int(c) for c in category_ids]
        self.transforms = transforms
        self.problems = list(problems or [])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_ids(self) -> list[int]:
        return [record.image_id for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        image, record = self.load(index)
        return self.transform_item(image, record)

    def load(self, index: int) -> tuple[np.ndarray, ImageRecord]:
        """The stored image (RGB uint8 [H, W, 3], checked against its annotated size) and its record."""
        record = self.records[index]
        image = read_image(record.path, source=record.annotation_file)
        if image.shape[:2] != (record.height, record.width):
            raise ValueError(
                f"{record.path}: image is {image.shape[1]}x{image.shape[0]} (w x h) but "
                f"{record.annotation_file} says {record.width}x{record.height}; fix the annotation's size"
            )
        return image, record

    def transform_item(self, image: np.ndarray, record: ImageRecord) -> tuple[torch.Tensor, Target]:
        """``(image tensor, target)`` of ``image`` with ``record``'s boxes, after the transform.
        Wrappers that compose images (``detkit.data.mosaic.Mosaic``) pass their own canvas and record."""
        import torch  # deferred: see the module docstring

        boxes = record.boxes
        # Box indices travel through the transform's label channel so that labels, iscrowd and
        # difficult all follow the boxes the transform drops.
        kept = np.arange(len(boxes), dtype=np.int64)
        scale = (1.0, 1.0)
        if self.transforms is not None:
            image, boxes, kept, scale = self.transforms(image, boxes, kept)
            kept = np.asarray(kept, dtype=np.int64).reshape(-1)
        target: Target = {
            "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(record.labels[kept], dtype=torch.int64),
            "image_id": record.image_id,
            "orig_size": torch.tensor([record.height, record.width], dtype=torch.int64),
            "scale": torch.tensor(scale, dtype=torch.float32),
        }
        if record.iscrowd is not None:
            target["iscrowd"] = torch.as_tensor(record.iscrowd[kept], dtype=torch.bool)
        if record.difficult is not None:
            target["difficult"] = torch.as_tensor(record.difficult[kept], dtype=torch.bool)
        return image_to_tensor(image), target

    def coco_ground_truth(self) -> dict:
        """The split's ground truth as a COCO-format dict, boxes ``xywh`` in stored-image pixels.

        Annotation ids start at 1 (pycocotools treats id 0 as "unmatched"). VOC-style datasets add
        ``"difficult": 0/1`` to each annotation.
        """
        images, annotations = [], []
        for record in self.records:
            images.append(
                {"id": record.image_id, "file_name": record.file_name, "width": record.width, "height": record.height}
            )
            for i, (box, label) in enumerate(zip(record.boxes.tolist(), record.labels.tolist(), strict=True)):
                width, height = box[2] - box[0], box[3] - box[1]
                annotation = {
                    "id": len(annotations) + 1,
                    "image_id": record.image_id,
                    "category_id": self.category_ids[label - 1],
                    "bbox": [box[0], box[1], width, height],
                    "area": float(record.areas[i]) if record.areas is not None else width * height,
                    "iscrowd": int(record.iscrowd[i]) if record.iscrowd is not None else 0,
                }
                if record.difficult is not None:
                    annotation["difficult"] = int(record.difficult[i])
                annotations.append(annotation)
        categories = [{"id": c, "name": n} for c, n in zip(self.category_ids, self.class_names, strict=True)]
        return {
            "info": {"description": f"detkit ground truth ({type(self).__name__})"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 [H, W, 3] -> contiguous float32 Tensor[3, H, W] in [0, 1]."""
    import torch  # deferred: see the module docstring

    # In numpy: single-threaded and predictable inside DataLoader workers, unlike torch's kernels.
    chw = image.transpose(2, 0, 1).astype(np.float32, order="C")
    chw *= np.float32(1.0 / 255.0)
    return torch.from_numpy(chw)
