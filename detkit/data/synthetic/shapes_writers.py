"""Writing the synthetic shapes data to disk in the COCO, VOC or YOLO layout (the same images and boxes).

- COCO: ``<root>/{train,val}/images/<stem>.<ext>`` and ``<root>/annotations/instances_{train,val}.json``
  (image ids 1.., category ids 1..5);
- VOC: ``<root>/JPEGImages/``, ``<root>/Annotations/<stem>.xml``, ``<root>/ImageSets/Main/{train,val}.txt``;
- YOLO: ``<root>/images/{train,val}/``, ``<root>/labels/{train,val}/<stem>.txt``, ``<root>/data.yaml``.

Stems are ``<split>_<index:06d>``; boxes are integer pixels, so every format stores them exactly
(YOLO up to its 6 written decimals).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import yaml

from detkit.data.synthetic.shapes_render import SHAPE_CLASSES, ShapesParams, ShapesSample, generate_sample
from detkit.data.synthetic.voc_xml import voc_xml

LAYOUTS = ("coco", "voc", "yolo")
SPLITS = ("train", "val")


def _write_image(path: Path, image: np.ndarray, image_format: str) -> None:
    options = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), options):
        raise OSError(f"could not write image file {path}")


def _generate_split(
    params: ShapesParams, split: str, image_dir: Path
) -> Iterator[tuple[str, ShapesSample]]:
    """Generate and write the split's images (threads: cv2 and numpy release the GIL); yield them in order."""
    count = params.num_train if split == "train" else params.num_val
    image_dir.mkdir(parents=True, exist_ok=True)

    def make(index: int) -> tuple[str, ShapesSample]:
        stem = f"{split}_{index:06d}"
        sample = generate_sample(params, split, index)
        _write_image(image_dir / f"{stem}.{params.image_format}", sample.image, params.image_format)
        # The writers need only the boxes now; drop the pixels so a large split stays small in memory.
        sample.image, sample.masks = np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0, 0), bool)
        return stem, sample

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        yield from pool.map(make, range(count))


def _integer_boxes(sample: ShapesSample) -> list[list[int]]:
    return [[int(v) for v in box] for box in sample.boxes.round()]


def write_coco_layout(root: str | Path, params: ShapesParams) -> Path:
    """Write the COCO layout under ``root``; returns ``root``."""
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    height, width = params.image_size
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_CLASSES)]
    for split in SPLITS:
        images, annotations = [], []
        for index, (stem, sample) in enumerate(_generate_split(params, split, root / split / "images")):
            images.append(
                {"id": index + 1, "file_name": f"{stem}.{params.image_format}", "width": width, "height": height}
            )
            for (x1, y1, x2, y2), label in zip(_integer_boxes(sample), sample.labels.tolist(), strict=True):
                annotations.append({
                    "id": len(annotations) + 1, "image_id": index + 1, "category_id": label,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
                })
        document = {
            "info": {"description": f"detkit synthetic shapes, {split} split, parameters {params.digest()}"},
            "licenses": [], "images": images, "annotations": annotations, "categories": categories,
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(document))
    return root


def _voc_xml(stem: str, params: ShapesParams, sample: ShapesSample) -> ElementTree.ElementTree:
    height, width = params.image_size
    names = [SHAPE_CLASSES[label - 1] for label in sample.labels.tolist()]
    objects = ((box, name, cut, None) for box, name, cut in zip(
        _integer_boxes(sample), names, sample.truncated.tolist(), strict=True
    ))  # fmt: skip
    return voc_xml(f"{stem}.{params.image_format}", width, height, objects)


def write_voc_layout(root: str | Path, params: ShapesParams) -> Path:
    """Write the VOC layout under ``root`` (splits ``train`` and ``val``); returns ``root``.

    Read it with ``VocDataset(root, split, class_names=SHAPE_CLASSES)``.
    """
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        stems = []
        for stem, sample in _generate_split(params, split, root / "JPEGImages"):
            _voc_xml(stem, params, sample).write(root / "Annotations" / f"{stem}.xml", encoding="unicode")
            stems.append(stem)
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{s}\n" for s in stems))
    return root


def write_yolo_layout(root: str | Path, params: ShapesParams) -> Path:
    """Write the YOLO layout under ``root``; returns the path of its ``data.yaml``."""
    root = Path(root)
    height, width = params.image_size
    for split in SPLITS:
        label_dir = root / "labels" / split
        label_dir.mkdir(parents=True, exist_ok=True)
        for stem, sample in _generate_split(params, split, root / "images" / split):
            lines = []
            for (x1, y1, x2, y2), label in zip(_integer_boxes(sample), sample.labels.tolist(), strict=True):
                cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
                lines.append(f"{label - 1} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
            (label_dir / f"{stem}.txt").write_text("".join(lines))
    data_yaml = root / "data.yaml"
    config = {
        "path": str(root.resolve()), "train": "images/train", "val": "images/val",
        "nc": len(SHAPE_CLASSES), "names": dict(enumerate(SHAPE_CLASSES)),
    }
    data_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    return data_yaml


WRITERS: dict[str, Callable[[Path, ShapesParams], Path]] = {
    "coco": write_coco_layout, "voc": write_voc_layout, "yolo": write_yolo_layout,
}


def write_shapes(root: str | Path, params: ShapesParams, layout: str = "coco") -> Path:
    """Generate the shapes data described by ``params`` into ``root`` in ``layout`` ("coco", "voc", "yolo")."""
    if layout not in WRITERS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return WRITERS[layout](Path(root), params)
