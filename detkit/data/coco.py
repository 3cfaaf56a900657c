"""COCO-format detection data: one JSON annotation file (read with pycocotools) and an image folder.

File boxes are ``[x, y, w, h]`` in stored-image pixels; they become ``xyxy``. COCO category ids
are often not contiguous (1..90 with gaps), so categories sorted by id become labels ``1..C`` and
``category_ids`` maps back.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detkit.data.base import BoxChecker, DetectionDataset, DetectionTransformFn, ImageRecord


def _file_box(bbox: object) -> list[float]:
    """A COCO ``bbox`` as four floats, NaN where it is missing or malformed (reported as invalid)."""
    if isinstance(bbox, list | tuple) and len(bbox) == 4:
        with contextlib.suppress(TypeError, ValueError):
            return [float(v) for v in bbox]
    return [float("nan")] * 4


class _LazyNames(Sequence):
    """File name of annotation i's image, looked up only for the few annotations that are reported."""

    def __init__(self, infos: list[tuple[str, int, int]], owner: np.ndarray) -> None:
        self.infos, self.owner = infos, owner

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index):
        return self.infos[self.owner[index]][0]


class _LazyRepr(Sequence):
    """How the file names annotation i's class, formatted only when reported."""

    def __init__(self, categories: list) -> None:
        self.categories = categories

    def __len__(self) -> int:
        return len(self.categories)

    def __getitem__(self, index):
        return f"category_id {self.categories[index]}"


def load_coco_records(
    ann_file: Path, img_dir: Path, checker: BoxChecker
) -> tuple[list[ImageRecord], list[str], list[int]]:
    """Parse a COCO annotation file into records (sorted by image id), class names and category ids."""
    from pycocotools.coco import COCO

    if not ann_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
            coco = COCO(str(ann_file))
    except json.JSONDecodeError as error:
        raise ValueError(f"{ann_file} is not valid JSON: {error}") from error
    except (KeyError, TypeError, AssertionError) as error:
        raise ValueError(f"{ann_file} is not a COCO annotation file (problem near {error!r})") from error
    for key in ("images", "categories"):
        if key not in coco.dataset:
            raise ValueError(f"{ann_file} is not a COCO annotation file: it has no '{key}' list")

    categories = sorted(coco.dataset["categories"], key=lambda c: c["id"])
    category_ids = [int(c["id"]) for c in categories]
    class_names = [str(c["name"]) for c in categories]
    label_of_category = {cid: i + 1 for i, cid in enumerate(category_ids)}

    image_ids = sorted(coco.getImgIds())
    infos = []
    for image_id in image_ids:
        info = coco.imgs[image_id]
        try:
            infos.append((str(info["file_name"]), int(info["width"]), int(info["height"])))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{ann_file}: image id {image_id} needs file_name, width and height ({error!r})") from None
    # All annotations at once, grouped by image in image-id order: one vectorised check for the file.
    per_image = [coco.imgToAnns.get(image_id, []) for image_id in image_ids]
    annotations = [annotation for group in per_image for annotation in group]
    owner = np.repeat(np.arange(len(image_ids)), [len(group) for group in per_image])
    bboxes = [a.get("bbox") for a in annotations]
    try:  # fast path: every bbox is four numbers
        file_boxes = np.array(bboxes, dtype=np.float64)
        if file_boxes.shape != (len(bboxes), 4):
            raise ValueError("malformed bbox")
    except (TypeError, ValueError):
        file_boxes = np.array([_file_box(b) for b in bboxes], dtype=np.float64).reshape(-1, 4)
    raw_boxes = file_boxes.copy()
    raw_boxes[:, 2:] += raw_boxes[:, :2]
    raw_categories = [a.get("category_id") for a in annotations]
    labels = np.array([label_of_category.get(c, 0) for c in raw_categories], dtype=np.int64)
    sizes = np.array([(width, height) for _, width, height in infos], dtype=np.int64).reshape(-1, 2)[owner]
    boxes, keep = checker.check(
        raw_boxes,
        labels,
        width=sizes[:, 0],
        height=sizes[:, 1],
        image=_LazyNames(infos, owner),
        class_repr=_LazyRepr(raw_categories),
        file_boxes=bboxes,  # as written, malformed ones included
        box_format="COCO x, y, w, h",
    )
    iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool)
    box_areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    areas = np.array([a.get("area", np.nan) for a in annotations], dtype=np.float64).reshape(-1)
    areas = np.where(np.isfinite(areas), areas, box_areas).astype(np.float32)
    # Split the kept annotations back into images (they are already grouped by image).
    kept_owner = owner[keep]
    bounds = np.searchsorted(kept_owner, np.arange(len(image_ids) + 1))
    boxes, labels, iscrowd, areas = boxes[keep], labels[keep], iscrowd[keep], areas[keep]
    records = []
    for index, (image_id, (file_name, width, height)) in enumerate(zip(image_ids, infos, strict=True)):
        part = slice(bounds[index], bounds[index + 1])
        records.append(
            ImageRecord(
                path=img_dir / file_name,
                file_name=file_name,
                image_id=int(image_id),
                width=width,
                height=height,
                boxes=boxes[part],
                labels=labels[part],
                annotation_file=str(ann_file),
                iscrowd=iscrowd[part],
                areas=areas[part],
            )
        )
    for image_id in sorted(set(coco.imgToAnns) - set(coco.imgs), key=str):
        for annotation in coco.imgToAnns[image_id]:
            checker.reject(
                image=f"<image id {image_id}>",
                box=str(annotation.get("bbox")),
                reason="the annotation's image_id is not in the file's 'images' list",
            )
    return records, class_names, category_ids


class CocoDataset(DetectionDataset):
    """A COCO-format split: ``ann_file`` (instances JSON) and ``img_dir`` (its ``file_name`` s are relative to it).

    ``image_id`` is the COCO image id; targets carry ``iscrowd``. ``invalid_boxes``: ``"error"``
    (default) or ``"skip"``; see ``detkit.data.base.BoxChecker``.
    """

    def __init__(
        self,
        ann_file: str | Path,
        img_dir: str | Path,
        *,
        transforms: DetectionTransformFn | None = None,
        invalid_boxes: str = "error",
    ) -> None:
        ann_file, img_dir = Path(ann_file), Path(img_dir)
        if not img_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {img_dir} (images of {ann_file})")
        checker = BoxChecker(invalid_boxes, str(ann_file))
        records, class_names, category_ids = load_coco_records(ann_file, img_dir, checker)
        checker.log_summary()
        super().__init__(
            records,
            class_names=class_names,
            category_ids=category_ids,
            transforms=transforms,
            problems=checker.problems,
        )
