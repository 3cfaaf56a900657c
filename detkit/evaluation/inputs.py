"""Loading and validating the evaluator's two inputs: COCO ground truth and COCO results.

Ground truth is a COCO instances dict (or a path to one): ``images``, ``annotations``,
``categories``; each annotation has ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]``
(COCO ``xywh``, absolute pixels), optional ``iscrowd``, ``area``, ``difficult`` (VOC).
Detections are a COCO results list (or a path to one): dicts with ``image_id``,
``category_id``, ``bbox`` ``[x, y, w, h]`` and ``score``.

Both are checked once here, so the protocols downstream never meet a malformed entry: every
problem raises ``ValueError`` naming the source (the file path, or "ground truth (dict)" /
"detections (list)" for in-memory inputs), the problem, and the first offending entry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GroundTruth:
    """Validated COCO ground truth.

    ``dataset`` is a COCO dict ready for pycocotools: annotations are copies of the input ones
    with ``id`` renumbered 1..N (pycocotools treats id 0 as "unmatched"), ``iscrowd`` and ``area``
    filled in when missing (area = w * h), and VOC ``difficult`` objects marked ``iscrowd`` so the
    COCO protocol ignores them as it ignores crowds. The arrays describe the same annotations:
    ``boxes: float64[N, 4] xyxy``, ``ignore: bool[N]`` (crowd or difficult).
    """

    source: str
    dataset: dict
    category_ids: list[int]
    category_names: list[str]
    image_ids: np.ndarray
    ann_image_ids: np.ndarray
    ann_category_ids: np.ndarray
    boxes: np.ndarray
    ignore: np.ndarray

    def name_of(self, category_id: int) -> str:
        return self.category_names[self.category_ids.index(category_id)]


@dataclass(frozen=True)
class DetectionSet:
    """Validated COCO results: ``image_ids, category_ids: int64[K]``, ``boxes: float64[K, 4] xyxy``,
    ``scores: float64[K]``."""

    source: str
    image_ids: np.ndarray
    category_ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def to_coco_results(self) -> list[dict]:
        """Fresh COCO result dicts (pycocotools' loadRes writes into the dicts it is given)."""
        xywh = self.boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]
        columns = (self.image_ids.tolist(), self.category_ids.tolist(), xywh.tolist(), self.scores.tolist())
        return [
            {"image_id": i, "category_id": c, "bbox": b, "score": s}
            for i, c, b, s in zip(*columns, strict=True)
        ]


def _read_json(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a valid JSON {what} file ({error})") from error


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _bbox_problem(bbox: Any) -> str | None:
    """Why ``bbox`` is not a valid COCO ``[x, y, w, h]`` box, or None when it is."""
    if not isinstance(bbox, list | tuple | np.ndarray) or len(bbox) != 4:
        return f"bbox must be a list of 4 numbers [x, y, w, h], got {bbox!r}"
    if not all(_is_number(v) for v in bbox):
        return f"bbox must hold 4 finite numbers, got {bbox!r}"
    if bbox[2] < 0 or bbox[3] < 0:
        return f"bbox has a negative width or height, got {bbox!r}"
    return None


def load_ground_truth(ground_truth: dict | str | Path | GroundTruth) -> GroundTruth:
    """Load (from a path) and validate COCO ground truth; a ``GroundTruth`` passes through."""
    if isinstance(ground_truth, GroundTruth):
        return ground_truth
    if isinstance(ground_truth, str | Path):
        source = str(ground_truth)
        data = _read_json(ground_truth, "ground truth")
    elif isinstance(ground_truth, dict):
        source, data = "ground truth (dict)", ground_truth
    else:
        raise TypeError(f"ground truth must be a COCO dict or a path, got {type(ground_truth).__name__}")

    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise ValueError(
            f"{source}: not COCO-format ground truth (need a JSON object with 'images', 'annotations' "
            "and 'categories' lists)"
        )

    image_ids: list[int] = []
    for index, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not _is_int(image.get("id")):
            raise ValueError(f"{source}: images[{index}] has no integer 'id': {image!r}")
        image_ids.append(int(image["id"]))
    if len(set(image_ids)) != len(image_ids):
        raise ValueError(f"{source}: image ids are not unique")

    category_ids: list[int] = []
    names: dict[int, str] = {}
    for index, category in enumerate(data["categories"]):
        if (
            not isinstance(category, dict)
            or not _is_int(category.get("id"))
            or not isinstance(category.get("name"), str)
        ):
            raise ValueError(
                f"{source}: categories[{index}] needs an integer 'id' and a string 'name': {category!r}"
            )
        category_ids.append(int(category["id"]))
        names[int(category["id"])] = category["name"]
    if len(set(category_ids)) != len(category_ids):
        raise ValueError(f"{source}: category ids are not unique")
    if len(set(names.values())) != len(names):
        raise ValueError(f"{source}: category names are not unique (per-class results are keyed by name)")

    known_images, known_categories = set(image_ids), set(category_ids)
    annotations: list[dict] = []
    for index, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise ValueError(f"{source}: annotations[{index}] is not an object: {ann!r}")
        if not _is_int(ann.get("image_id")) or ann["image_id"] not in known_images:
            raise ValueError(
                f"{source}: annotations[{index}] refers to unknown image_id {ann.get('image_id')!r}"
            )
        if not _is_int(ann.get("category_id")) or ann["category_id"] not in known_categories:
            raise ValueError(
                f"{source}: annotations[{index}] refers to unknown category_id {ann.get('category_id')!r}"
            )
        problem = _bbox_problem(ann.get("bbox"))
        if problem:
            raise ValueError(f"{source}: annotations[{index}]: {problem}")
        normalised = dict(ann)
        normalised["id"] = index + 1
        x, y, w, h = (float(v) for v in ann["bbox"])
        normalised["bbox"] = [x, y, w, h]
        normalised.setdefault("area", w * h)
        normalised["iscrowd"] = int(bool(ann.get("iscrowd", 0)) or bool(ann.get("difficult", 0)))
        annotations.append(normalised)

    dataset = {
        "info": data.get("info", {}),
        "images": data["images"],
        "categories": data["categories"],
        "annotations": annotations,
    }
    xywh = np.array([a["bbox"] for a in annotations], dtype=np.float64).reshape(-1, 4)
    order = np.argsort(category_ids, kind="stable")
    return GroundTruth(
        source=source,
        dataset=dataset,
        category_ids=[category_ids[i] for i in order],
        category_names=[names[category_ids[i]] for i in order],
        image_ids=np.array(image_ids, dtype=np.int64),
        ann_image_ids=np.array([a["image_id"] for a in annotations], dtype=np.int64),
        ann_category_ids=np.array([a["category_id"] for a in annotations], dtype=np.int64),
        boxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
        ignore=np.array([bool(a["iscrowd"]) for a in annotations], dtype=bool),
    )


def _first_bad(source: str, detections: list, check) -> ValueError:
    """Locate the first entry ``check`` rejects and describe it (the slow path, taken only on error)."""
    for index, det in enumerate(detections):
        problem = check(det)
        if problem:
            return ValueError(f"{source}: detection {index}: {problem}")
    return ValueError(f"{source}: malformed detections")


def _detection_problem(det: Any) -> str | None:
    if not isinstance(det, dict):
        return f"not an object: {det!r}"
    missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in det]
    if missing:
        return f"missing {', '.join(missing)} in {det!r}"
    if not _is_int(det["image_id"]) or not _is_int(det["category_id"]):
        return f"image_id and category_id must be integers, got {det['image_id']!r}, {det['category_id']!r}"
    if not _is_number(det["score"]):
        return f"score must be a finite number, got {det['score']!r}"
    return _bbox_problem(det["bbox"])


def load_detections(
    detections: list[dict] | str | Path | DetectionSet, ground_truth: GroundTruth
) -> DetectionSet:
    """Load (from a path) and validate COCO results against ``ground_truth``'s image and category ids."""
    if isinstance(detections, DetectionSet):
        return detections
    if isinstance(detections, str | Path):
        source = str(detections)
        data = _read_json(detections, "detections")
    elif isinstance(detections, list | tuple):
        source, data = "detections (list)", list(detections)
    else:
        raise TypeError(
            f"detections must be a list of COCO result dicts or a path, got {type(detections).__name__}"
        )
    if not isinstance(data, list):
        raise ValueError(
            f"{source}: COCO results must be a JSON list of detections, got {type(data).__name__}"
        )

    try:
        # numpy infers one dtype per column; a stray string, float id or ragged box shows up as
        # the wrong dtype kind or shape, and only then is the slow per-entry check run.
        image_ids = np.array([d["image_id"] for d in data]) if data else np.zeros(0, dtype=np.int64)
        category_ids = np.array([d["category_id"] for d in data]) if data else np.zeros(0, dtype=np.int64)
        scores = np.array([d["score"] for d in data]) if data else np.zeros(0)
        xywh = np.array([d["bbox"] for d in data]) if data else np.zeros((0, 4))
        fine = (
            image_ids.dtype.kind in "iu"
            and category_ids.dtype.kind in "iu"
            and scores.dtype.kind in "fiu"
            and xywh.dtype.kind in "fiu"
            and xywh.shape == (len(data), 4)
            and bool(np.isfinite(scores).all())
            and bool(np.isfinite(xywh).all())
            and bool((xywh[:, 2:] >= 0).all())
        )
    except (KeyError, TypeError, ValueError):
        fine = False
    if not fine:
        raise _first_bad(source, data, _detection_problem)
    image_ids, category_ids = image_ids.astype(np.int64), category_ids.astype(np.int64)
    scores, xywh = scores.astype(np.float64), xywh.astype(np.float64)

    for name, ids, known in (
        ("image", image_ids, ground_truth.image_ids),
        ("category", category_ids, np.array(ground_truth.category_ids, dtype=np.int64)),
    ):
        unknown = ~np.isin(ids, known)
        if unknown.any():
            first = int(np.flatnonzero(unknown)[0])
            raise ValueError(
                f"{source}: {int(unknown.sum())} detection(s) refer to {name} ids not in the ground truth "
                f"{ground_truth.source} (first: detection {first}, {name}_id {int(ids[first])})"
            )
    return DetectionSet(
        source=source,
        image_ids=image_ids,
        category_ids=category_ids,
        boxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
        scores=scores,
    )
