"""Writing the synthetic "scenes" data (``detkit.data.synthetic.scenes_render``) to disk as a user's dataset would be.

Every layout holds the same images and boxes, under ``<root>/<layout>/``:

- ``coco/``: ``{train,val}/<stem>.jpg`` and ``annotations/instances_{train,val}.json`` (image ids
  1.., category ids 3, 7, 12, 20, 31, boxes ``[x, y, w, h]``);
- ``voc/``: ``JPEGImages/``, ``Annotations/<stem>.xml`` (1-based inclusive corners, ``truncated``
  and ``occluded`` flags), ``ImageSets/Main/{train,val}.txt``;
- ``yolo/``: ``images/{train,val}/``, ``labels/{train,val}/<stem>.txt`` (class index, normalised
  ``cx cy w h``; an empty file for an image without objects), ``data.yaml``.

Stems are ``<split>_<index:06d>``. Boxes are integer pixels, so COCO and VOC store them exactly and
YOLO to its 6 written decimals. The default folder is a cache (``$DETKIT_CACHE/scenes/<hash>/`` or
``~/.cache/detkit/scenes/<hash>/``), written in a temporary folder and renamed into place once
complete, like the shapes data.
"""

from __future__ import annotations

import json
import logging
import os
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import yaml

from detkit.data.synthetic.scenes_render import SCENE_CATEGORIES, SceneSample, ScenesParams, generate_scene
from detkit.data.synthetic.staging import COMPLETE_MARKER, staged_folder
from detkit.data.synthetic.voc_xml import voc_xml

logger = logging.getLogger(__name__)

LAYOUTS = ("coco", "voc", "yolo")
SPLITS = ("train", "val")
_JPEG_QUALITY = 92


def default_cache_root() -> Path:
    """``$DETKIT_CACHE/scenes`` when DETKIT_CACHE is set, else ``~/.cache/detkit/scenes``."""
    cache = os.environ.get("DETKIT_CACHE")
    return (Path(cache) if cache else Path.home() / ".cache" / "detkit") / "scenes"


def _encode(sample: SceneSample) -> bytes:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY]
    )
    if not ok:
        raise OSError("could not encode a scenes image as JPEG")
    return data.tobytes()


def _coco_document(split: str, params: ScenesParams, items: list[tuple[str, SceneSample]]) -> dict:
    images, annotations = [], []
    for index, (stem, sample) in enumerate(items):
        height, width = sample.image.shape[:2]
        images.append({"id": index + 1, "file_name": f"{stem}.jpg", "width": width, "height": height})
        for (x1, y1, x2, y2), category in zip(
            sample.boxes.astype(int).tolist(), sample.category_ids.tolist(), strict=True
        ):
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": category,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                                "iscrowd": 0})  # fmt: skip
    categories = [{"id": cid, "name": name, "supercategory": "object"} for cid, name in SCENE_CATEGORIES.items()]
    info = {"description": f"detkit synthetic scenes, {split} split, parameters {params.digest()}"}
    return {"info": info, "licenses": [], "images": images, "annotations": annotations, "categories": categories}


def _voc_xml(stem: str, sample: SceneSample) -> ElementTree.ElementTree:
    height, width = sample.image.shape[:2]
    names = [SCENE_CATEGORIES[category] for category in sample.category_ids.tolist()]
    objects = zip(sample.boxes.astype(int).tolist(), names, sample.truncated.tolist(), sample.occluded.tolist(),
                  strict=True)  # fmt: skip
    return voc_xml(f"{stem}.jpg", width, height, objects)


def _yolo_lines(sample: SceneSample) -> str:
    height, width = sample.image.shape[:2]
    index_of = {cid: i for i, cid in enumerate(SCENE_CATEGORIES)}
    lines = []
    for (x1, y1, x2, y2), category in zip(sample.boxes.astype(int).tolist(), sample.category_ids.tolist(), strict=True):
        cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
        lines.append(f"{index_of[category]} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
    return "".join(lines)


def _write_split(root: Path, layouts: tuple[str, ...], params: ScenesParams, split: str) -> None:
    count = params.num_train if split == "train" else params.num_val
    image_dirs = {
        "coco": root / "coco" / split,
        "voc": root / "voc" / "JPEGImages",
        "yolo": root / "yolo" / "images" / split,
    }
    for layout in layouts:
        image_dirs[layout].mkdir(parents=True, exist_ok=True)
    if "voc" in layouts:
        (root / "voc" / "Annotations").mkdir(parents=True, exist_ok=True)
    if "yolo" in layouts:
        (root / "yolo" / "labels" / split).mkdir(parents=True, exist_ok=True)

    def make(index: int) -> tuple[str, SceneSample]:
        stem = f"{split}_{index:06d}"
        sample = generate_scene(params, split, index)
        data = _encode(sample)
        for layout in layouts:
            (image_dirs[layout] / f"{stem}.jpg").write_bytes(data)
        if "voc" in layouts:
            _voc_xml(stem, sample).write(root / "voc" / "Annotations" / f"{stem}.xml", encoding="unicode")
        if "yolo" in layouts:
            (root / "yolo" / "labels" / split / f"{stem}.txt").write_text(_yolo_lines(sample))
        # Only the size and boxes are needed from here on: keep a 1-row image, not the pixels.
        height, width = sample.image.shape[:2]
        sample.image = np.broadcast_to(np.zeros(3, np.uint8), (height, width, 3))
        return stem, sample

    # Threads: cv2 and numpy release the GIL for the drawing and the encoding.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        items = list(pool.map(make, range(count)))
    if "coco" in layouts:
        (root / "coco" / "annotations").mkdir(parents=True, exist_ok=True)
        document = _coco_document(split, params, items)
        (root / "coco" / "annotations" / f"instances_{split}.json").write_text(json.dumps(document))
    if "voc" in layouts:
        (root / "voc" / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
        (root / "voc" / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{stem}\n" for stem, _ in items))


def write_scenes(root: str | Path, params: ScenesParams, layouts: tuple[str, ...] = LAYOUTS) -> Path:
    """Generate the scenes data described by ``params`` under ``root/<layout>/`` for each of
    ``layouts`` (``"coco"``, ``"voc"``, ``"yolo"``); returns ``root``."""
    unknown = [layout for layout in layouts if layout not in LAYOUTS]
    if unknown or not layouts:
        raise ValueError(f"layouts must be among {LAYOUTS}, got {list(layouts)}")
    root = Path(root)
    for split in SPLITS:
        _write_split(root, tuple(layouts), params, split)
    if "yolo" in layouts:
        config = {"path": str((root / "yolo").resolve()), "train": "images/train", "val": "images/val",
                  "nc": len(SCENE_CATEGORIES), "names": dict(enumerate(SCENE_CATEGORIES.values()))}  # fmt: skip
        (root / "yolo" / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def ensure_scenes(params: ScenesParams, root: str | Path | None = None, layouts: tuple[str, ...] = LAYOUTS) -> Path:
    """The folder ``<root>/<hash of params and layouts>/`` holding the data, generated first if missing.

    Written into a temporary sibling and renamed into place, so an interrupted run leaves no
    half-written folder behind; a folder without the completion marker is generated again.
    """
    base = Path(root) if root is not None else default_cache_root()
    folder = base / f"{params.digest()}-{'-'.join(sorted(layouts))}"
    if (folder / COMPLETE_MARKER).is_file():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    logger.info(
        "generating the scenes data (%d train + %d val images) into %s", params.num_train, params.num_val, folder
    )
    with staged_folder(folder, params, replace_complete=True) as staging:
        write_scenes(staging, params, layouts)
        if (staging / "yolo" / "data.yaml").is_file():  # its absolute path must name the final folder
            data_yaml = staging / "yolo" / "data.yaml"
            config = yaml.safe_load(data_yaml.read_text())
            config["path"] = str((folder / "yolo").resolve())
            data_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    return folder
