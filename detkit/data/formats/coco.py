"""COCO-format detection data: one JSON annotation file and an image folder.

File boxes are ``[x, y, w, h]`` in stored-image pixels; they become ``xyxy``. COCO category ids
are often not contiguous (1..90 with gaps), so categories sorted by id become labels ``1..C`` and
``category_ids`` maps back.

The file is read with ``json`` rather than pycocotools' ``COCO``: that index keeps the last of two
images with one id without a word, and a syntax error should name its line and column. Every
problem of the file is reported (``detkit.data.validation.problems``): a malformed image entry, an image id
listed twice (its annotations cannot be told apart: every entry of that id is dropped), an
annotation for an unlisted image, an unknown category id, a malformed, non-finite, empty or
outside box, each with its annotation id.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from detkit.data.base import DetectionDataset, DetectionTransformFn, ImageRecord
from detkit.data.validation.box_checks import BoxChecker
from detkit.data.validation.problems import ProblemLog


def _read_json(ann_file: Path, log: ProblemLog) -> dict:
    if not ann_file.is_file():
        raise log.fatal("missing_annotation_file", ann_file, "COCO annotation file not found")
    try:
        data = json.loads(ann_file.read_bytes())
    except json.JSONDecodeError as error:
        raise log.fatal("malformed_annotation_file", ann_file, f"not valid JSON: {error.msg}",
                        where=f"line {error.lineno}, column {error.colno}") from None
    except UnicodeDecodeError as error:
        raise log.fatal("malformed_annotation_file", ann_file, f"not UTF-8 text: {error}") from None
    if not isinstance(data, dict):
        raise log.fatal(
            "malformed_annotation_file", ann_file, "not a COCO annotation file: the top level is not an object"
        )
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise log.fatal(
                "malformed_annotation_file", ann_file, f"not a COCO annotation file: it has no '{key}' list"
            )
    if not isinstance(data.get("annotations", []), list):
        raise log.fatal("malformed_annotation_file", ann_file, "'annotations' is not a list")
    return data


def _categories(data: dict, ann_file: Path, log: ProblemLog) -> tuple[list[int], list[str]]:
    try:
        categories = sorted(((int(c["id"]), str(c["name"])) for c in data["categories"]), key=lambda c: c[0])
    except (KeyError, TypeError, ValueError) as error:
        raise log.fatal("malformed_annotation_file", ann_file,
                        f"every entry of 'categories' needs an integer 'id' and a 'name' ({error!r})") from None
    repeated = sorted(i for i, n in Counter(c[0] for c in categories).items() if n > 1)
    if repeated:
        raise log.fatal("malformed_annotation_file", ann_file, f"category id(s) {repeated} are listed more than once")
    return [c[0] for c in categories], [c[1] for c in categories]


def _image_entries(data: dict, ann_file: Path, log: ProblemLog) -> tuple[list[tuple], set]:
    """Valid ``(image id, file name, width, height)`` entries in file order, and the ids listed twice."""
    entries = []
    for index, info in enumerate(data["images"]):
        try:
            image_id, file_name = info["id"], str(info["file_name"])
            width, height = int(info["width"]), int(info["height"])
            if isinstance(image_id, bool) or not isinstance(image_id, int) or width <= 0 or height <= 0:
                raise ValueError("id must be an integer, width and height positive")
        except (KeyError, TypeError, ValueError) as error:
            described = f"{type(error).__name__}: {error}" if not isinstance(error, KeyError) else f"no {error}"
            log.add("malformed_annotation_file", ann_file,
                    f"an image entry needs an integer id, a file_name and a positive width and height ({described})",
                    where=f"images[{index}]", image=info.get("file_name") if isinstance(info, dict) else None)
            log.drop_image()
            continue
        entries.append((image_id, file_name, width, height))
    counts = Counter(entry[0] for entry in entries)
    repeated = {image_id for image_id, count in counts.items() if count > 1}
    for image_id in sorted(repeated):
        names = [entry[1] for entry in entries if entry[0] == image_id]
        log.add("duplicate_image_id", ann_file,
                f"image id {image_id} is listed {len(names)} times in 'images' ({', '.join(names)}); its annotations "
                "cannot be told apart, so every entry with this id is dropped", where=f"image id {image_id}")
    return entries, repeated


def _file_box(bbox: object) -> tuple[list[float] | None, str | None]:
    """A COCO ``bbox`` as four floats (NaN and inf pass through), or None and why it is malformed."""
    if bbox is None:
        return None, "the annotation has no bbox"
    if not isinstance(bbox, list | tuple):
        return None, f"bbox {bbox!r} is not a list"
    if len(bbox) != 4:
        return None, f"bbox {list(bbox)} has {len(bbox)} values, expected 4 (x, y, w, h)"
    try:
        if any(isinstance(v, bool | str) for v in bbox):
            raise TypeError
        return [float(v) for v in bbox], None
    except (TypeError, ValueError):
        return None, f"bbox {list(bbox)} holds a value that is not a number"


def _annotation_where(annotation: object, index: int) -> str:
    """Where an annotation is: its id, or its place in the list when it has none."""
    if isinstance(annotation, dict) and "id" in annotation:
        return f"annotation id {annotation['id']}"
    return f"annotations[{index}]"


def _report_orphan(annotation: object, index: int, ann_file: Path, log: ProblemLog) -> None:
    """An annotation that belongs to no listed image: malformed, or for an unknown image id."""
    where = _annotation_where(annotation, index)
    if not isinstance(annotation, dict) or "image_id" not in annotation:
        log.add("malformed_annotation_file", ann_file, "an annotation needs an image_id", where=where)
    else:
        log.add("unknown_image_id", ann_file, f"image_id {annotation['image_id']!r} is not in the file's 'images' list",
                where=where)
        _, malformed = _file_box(annotation.get("bbox"))
        if malformed:
            log.add("malformed_box", ann_file, malformed, where=where)
    log.dropped_boxes += 1


def load_coco_records(
    ann_file: Path, img_dir: Path, log: ProblemLog
) -> tuple[list[ImageRecord], list[str], list[int]]:
    """Parse a COCO annotation file into records (sorted by image id), class names and category ids.

    Bad entries are reported to ``log`` and left out; images with a repeated id are left out whole.
    """
    data = _read_json(ann_file, log)
    category_ids, class_names = _categories(data, ann_file, log)
    label_of_category = {cid: i + 1 for i, cid in enumerate(category_ids)}
    entries, repeated = _image_entries(data, ann_file, log)
    owner_of_id = {}
    for index, entry in enumerate(entries):
        owner_of_id.setdefault(entry[0], index)

    # One pass over the annotations; the (rare) bad ones take the slow, message-building path.
    annotations, owners, positions, bboxes = [], [], [], []
    for index, annotation in enumerate(data.get("annotations", [])):
        try:
            owner = owner_of_id.get(annotation["image_id"])
        except (KeyError, TypeError):  # not an object, no image_id, or an unhashable one
            owner = None
        if owner is None:
            _report_orphan(annotation, index, ann_file, log)
            continue
        annotations.append(annotation)
        owners.append(owner)
        positions.append(index)
        bboxes.append(annotation.get("bbox"))
    try:  # fast path: every bbox is four numbers
        if any(isinstance(b, str) for b in bboxes):
            raise ValueError("a bbox is text")
        xywh = np.array(bboxes, dtype=np.float64).reshape(len(bboxes), 4)
    except (TypeError, ValueError):
        parsed = [_file_box(b) for b in bboxes]
        well_formed = [malformed is None for _, malformed in parsed]
        for annotation, owner, position, (_, malformed) in zip(annotations, owners, positions, parsed, strict=True):
            if malformed:
                log.add("malformed_box", ann_file, malformed, where=_annotation_where(annotation, position),
                        image=entries[owner][1])
        log.dropped_boxes += well_formed.count(False)
        annotations = [a for a, ok in zip(annotations, well_formed, strict=True) if ok]
        owners = [o for o, ok in zip(owners, well_formed, strict=True) if ok]
        positions = [p for p, ok in zip(positions, well_formed, strict=True) if ok]
        xywh = np.array([box for box, _ in parsed if box is not None], dtype=np.float64).reshape(-1, 4)

    owner = np.array(owners, dtype=np.int64)
    raw = xywh.copy()
    raw[:, 2:] += raw[:, :2]
    categories = [a.get("category_id") for a in annotations]
    labels = np.array(
        [
            label_of_category.get(c, 0) if isinstance(c, int | float) and not isinstance(c, bool) else 0
            for c in categories
        ],
        dtype=np.int64,
    )
    sizes = np.array([(e[2], e[3]) for e in entries], dtype=np.float64).reshape(-1, 2)[owner]

    def locate(i: int) -> tuple[str, str]:
        return _annotation_where(annotations[i], positions[i]), entries[owner[i]][1]

    known = ", ".join(str(c) for c in category_ids[:20]) + (", ..." if len(category_ids) > 20 else "")
    boxes, keep = BoxChecker(log).check(
        raw, labels, width=sizes[:, 0], height=sizes[:, 1], file=str(ann_file), locate=locate,
        file_boxes=xywh, box_format="COCO x, y, w, h",
        class_text=lambda i: f"category_id {categories[i]!r} is not in 'categories' (ids {known})",
    )
    iscrowd = np.array([bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool)
    box_areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    areas = np.array([a.get("area") if isinstance(a.get("area"), int | float) else np.nan for a in annotations],
                     dtype=np.float64)
    areas = np.where(np.isfinite(areas), areas, box_areas).astype(np.float32)

    # The kept annotations of each image, in file order: sort once by owner instead of a mask per image.
    order = np.argsort(owner, kind="stable")
    order = order[keep[order]]
    bounds = np.searchsorted(owner[order], np.arange(len(entries) + 1))
    records = []
    for index in sorted(range(len(entries)), key=lambda i: entries[i][0]):
        image_id, file_name, width, height = entries[index]
        mine = order[bounds[index] : bounds[index + 1]]
        if image_id in repeated:
            log.drop_image(len(mine))
            continue
        records.append(
            ImageRecord(
                path=img_dir / file_name,
                file_name=file_name,
                image_id=int(image_id),
                width=width,
                height=height,
                boxes=boxes[mine],
                labels=labels[mine],
                annotation_file=str(ann_file),
                iscrowd=iscrowd[mine],
                areas=areas[mine],
            )
        )
    return records, class_names, category_ids


class CocoDataset(DetectionDataset):
    """A COCO-format split: ``ann_file`` (instances JSON) and ``img_dir`` (its ``file_name`` s are relative to it).

    ``image_id`` is the COCO image id; targets carry ``iscrowd``. ``on_bad_data``: ``"error"``
    (default) or ``"skip"``; ``verify_images``: decode every image once (else headers only). See
    ``detkit.data.validation.problems``.
    """

    def __init__(
        self,
        ann_file: str | Path,
        img_dir: str | Path,
        *,
        transforms: DetectionTransformFn | None = None,
        on_bad_data: str = "error",
        verify_images: bool = True,
    ) -> None:
        ann_file, img_dir = Path(ann_file), Path(img_dir)
        log = ProblemLog(str(ann_file), on_bad_data)
        if not img_dir.is_dir():
            raise log.fatal("missing_image", img_dir, f"COCO image folder not found (the images of {ann_file})")
        records, class_names, category_ids = load_coco_records(ann_file, img_dir, log)
        super().__init__(
            records,
            class_names=class_names,
            category_ids=category_ids,
            transforms=transforms,
            problems=log,
            verify_images=verify_images,
        )
