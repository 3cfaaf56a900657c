"""What every detkit dataset shares: image records, the checks of image files, image reading, the transform call.

A loader (COCO, VOC, YOLO, shapes) only parses its annotation format into ``ImageRecord`` s, with
boxes already converted to ``xyxy`` float32 pixels of the stored image (upright: its EXIF
orientation applied, as ``detkit.data.image_files.read_image`` reads it) and labels in ``1..C``,
reporting what is wrong in its files to a ``ProblemLog`` (``detkit.data.validation.problems``);
``DetectionDataset`` checks the image files, applies the ``on_bad_data`` policy and does the
rest. ``dataset[i]`` returns ``(image, target)``:

- ``image``: Tensor[3, H, W] uint8 in 0..255 (RGB), after the transform when one is given (a
  quarter of float32's bytes through the loader; the detector scales it to [0, 1] on its device,
  ``detkit.ops.pixels.to_unit_float``);
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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detkit.data.image_files import orientation_text, read_image  # noqa: F401  (read_image re-exported)
from detkit.data.validation.image_check_cache import checked_image_files
from detkit.data.validation.problems import Problem, ProblemLog

if TYPE_CHECKING:
    import torch

    from detkit.structures import Target

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


def check_records(
    records: list[ImageRecord], log: ProblemLog, *, class_names: Sequence[str], decode: bool = True
) -> list[ImageRecord]:
    """The records that survive the checks common to every format, in order; problems go to ``log``.

    An image file listed more than once keeps its first entry (the others are dropped); a file
    that is missing, does not decode (with ``decode``: is truncated) or has another size than its
    record says (also when only its EXIF orientation swaps width and height) is dropped. The files
    are checked once per job and only when changed (``detkit.data.validation.image_check_cache``).
    Warnings: the same box and class twice in one image, a class without any box among the kept
    records.
    """
    by_path: dict[str, list[ImageRecord]] = {}
    for record in records:
        by_path.setdefault(str(record.path), []).append(record)
    unique = []
    for record in records:
        group = by_path[str(record.path)]
        if record is not group[0]:
            log.drop_image(len(record.boxes))
            continue
        unique.append(record)
        if len(group) > 1:
            entries = ", ".join(f"image id {r.image_id} in {Path(r.annotation_file).name}" for r in group)
            log.add("duplicate_file_name", record.path,
                    f"the same image file is listed {len(group)} times ({entries}); "
                    "the first is kept, the others dropped")
    kept = []
    verdicts = checked_image_files([r.path for r in unique], decode=decode, source=log.source)
    for record, found in zip(unique, verdicts, strict=True):
        annotated = (record.width, record.height)
        if found.kind is not None:
            log.add(found.kind, record.path, f"{found.reason} (listed in {record.annotation_file})")
        elif found.size != annotated and found.stored_size == annotated:
            turned = orientation_text(found.orientation)
            log.add("exif_rotation_swaps_size", record.path,
                    f"{turned} turns the stored {annotated[0]}x{annotated[1]} pixels into the upright "
                    f"{found.size[0]}x{found.size[1]} (width x height) picture that detkit reads and viewers show, "
                    f"but {record.annotation_file} says {annotated[0]}x{annotated[1]}: its boxes are on the unturned "
                    "pixels. Annotate the upright picture, or save the pixels turned and drop the orientation tag")
        elif found.size != annotated:
            turned = f", upright after its {orientation_text(found.orientation)}" if found.orientation != 1 else ""
            log.add("image_size_mismatch", record.path,
                    f"the file is {found.size[0]}x{found.size[1]} (width x height{turned}) but "
                    f"{record.annotation_file} says {record.width}x{record.height}")
        else:
            kept.append(record)
            continue
        log.drop_image(len(record.boxes))
    for record, repeats in zip(kept, _repeated_boxes(kept), strict=True):
        if repeats:
            log.add("duplicate_box", record.annotation_file,
                    f"{repeats} box(es) repeat another box of the same class exactly", image=record.file_name)
    labels = np.concatenate([r.labels for r in kept]) if kept else np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(class_names) + 1)
    for label, name in enumerate(class_names, start=1):
        if counts[label] == 0:
            log.add("class_without_boxes", log.source, f"class {name!r} (label {label}) has no box in this split")
    return kept


def _repeated_boxes(records: list[ImageRecord]) -> np.ndarray:
    """Per record, how many of its boxes repeat another of its boxes with the same class exactly.
    One sort over every box of the split: a call per image costs seconds at 100,000 images."""
    counts = np.array([len(r.boxes) for r in records], dtype=np.int64)
    if not counts.sum():
        return np.zeros(len(records), dtype=np.int64)
    owner = np.repeat(np.arange(len(records)), counts)
    # float64 holds the owner index, the float32 coordinates and the labels exactly.
    keyed = np.concatenate(
        [owner[:, None], np.concatenate([r.boxes for r in records]),
         np.concatenate([r.labels for r in records])[:, None]],
        axis=1, dtype=np.float64,
    )
    distinct = np.unique(keyed, axis=0)[:, 0].astype(np.int64)
    return counts - np.bincount(distinct, minlength=len(records))


class DetectionDataset:
    """A detection split held as ``ImageRecord`` s; the common part of every detkit loader.

    ``class_names[i]`` is label ``i + 1``; ``category_ids[i]`` is the dataset's own id for label
    ``i + 1`` (what ``coco_ground_truth`` and detection results use); None numbers them as the
    labels, 1..K, for formats without ids of their own (VOC, YOLO). With a ``problems`` log (what
    the loader found in the annotation files), the image files are checked (``check_records``;
    ``verify_images=False`` reads their headers only, which misses truncated files) and the log's
    ``on_bad_data`` policy is applied: every problem in one error, or the bad items dropped.
    ``problems`` then lists every ``Problem`` found, warnings included.
    """

    def __init__(
        self,
        records: list[ImageRecord],
        *,
        class_names: Sequence[str],
        category_ids: Sequence[int] | None = None,
        transforms: DetectionTransformFn | None = None,
        problems: ProblemLog | None = None,
        verify_images: bool = True,
    ) -> None:
        if category_ids is None:
            category_ids = range(1, len(class_names) + 1)
        if len(class_names) != len(category_ids):
            raise ValueError("class_names and category_ids must have the same length")
        self.class_names = list(class_names)
        self.category_ids = [int(c) for c in category_ids]
        self.transforms = transforms
        if problems is not None:
            records = check_records(records, problems, class_names=self.class_names, decode=verify_images)
            problems.apply(kept_images=len(records), kept_boxes=sum(len(r.boxes) for r in records))
        self.records = records
        self.problems: list[Problem] = list(problems.problems) if problems is not None else []
        # The split's annotation file (or list, or YAML): names it in messages and keys its image check cache.
        self.source = problems.source if problems is not None else None
        # What on_bad_data="skip" left out (all 0 under "error", which raised instead).
        self.dropped = {
            "images": problems.dropped_images if problems is not None else 0,
            "bad_boxes": problems.dropped_boxes if problems is not None else 0,
            "boxes_in_dropped_images": problems.boxes_in_dropped_images if problems is not None else 0,
        }
        # Whether every image was decoded once already (check_dataset need not do it again).
        self.images_verified = problems is not None and verify_images

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
        Wrappers that compose images (``detkit.data.augment.mosaic.Mosaic``) pass their own canvas and record."""
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
    """RGB uint8 [H, W, 3] -> contiguous uint8 Tensor[3, H, W] (0..255; the model scales it)."""
    import torch  # deferred: see the module docstring

    if image.dtype != np.uint8:
        raise TypeError(f"image_to_tensor expects an RGB uint8 [H, W, 3] array, got {image.dtype}")
    # In numpy: single-threaded and predictable inside DataLoader workers, unlike torch's kernels.
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
