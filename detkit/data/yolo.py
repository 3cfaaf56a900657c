"""Ultralytics-style YOLO detection data: a data YAML, ``images/`` folders and parallel ``labels/`` folders.

The YAML gives ``path`` (the dataset root; relative to the YAML's folder, default that folder),
``train`` / ``val`` / ``test`` (an image folder, a ``.txt`` list of images, or a list of those,
relative to ``path``) and ``names`` (a list, or a dict ``{index: name}``). The label file of
``.../images/x.jpg`` is ``.../labels/x.txt``: one line ``class cx cy w h`` per object,
normalised to [0, 1], class 0-based; a polygon line ``class x1 y1 x2 y2 ...`` counts as its
bounding box. A missing or empty label file is an image without objects.

Class index ``k`` becomes label ``k + 1`` and category id ``k + 1`` (COCO tools treat id 0 badly).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml

from detkit.data.base import (
    BoxChecker,
    DetectionDataset,
    DetectionTransformFn,
    ImageRecord,
    image_size_from_header,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def read_data_yaml(data_yaml: Path) -> tuple[Path, dict, list[str]]:
    """(dataset root, the YAML mapping, class names) of a YOLO data YAML."""
    if not data_yaml.is_file():
        raise FileNotFoundError(f"YOLO data YAML not found: {data_yaml}")
    try:
        config = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{data_yaml} is not valid YAML: {error}") from error
    if not isinstance(config, dict) or "names" not in config:
        raise ValueError(f"{data_yaml} is not a YOLO data YAML: it needs 'names' (and 'train', 'val')")
    names = config["names"]
    if isinstance(names, dict):
        keys = sorted(int(k) for k in names)
        if keys != list(range(len(keys))):
            raise ValueError(f"{data_yaml}: 'names' keys must be 0..{len(keys) - 1}, got {keys}")
        names = [names[k] if k in names else names[str(k)] for k in keys]
    if not isinstance(names, list) or not names:
        raise ValueError(f"{data_yaml}: 'names' must be a non-empty list or a dict {{index: name}}")
    if "nc" in config and int(config["nc"]) != len(names):
        raise ValueError(f"{data_yaml}: nc={config['nc']} but 'names' has {len(names)} entries")
    root = Path(config.get("path") or ".")
    if not root.is_absolute():
        root = data_yaml.parent / root
    return root, config, [str(n) for n in names]


def list_images(root: Path, entry: str | list, data_yaml: Path) -> list[Path]:
    """Image files of one split entry: folders are searched recursively, ``.txt`` files list images."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        location = Path(str(item))
        location = location if location.is_absolute() else root / location
        if location.is_dir():
            images += sorted(p for p in location.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif location.is_file() and location.suffix == ".txt":
            lines = [line.strip() for line in location.read_text().splitlines() if line.strip()]
            images += [Path(line) if Path(line).is_absolute() else location.parent / line for line in lines]
        else:
            raise FileNotFoundError(f"{data_yaml}: split entry {item!r} -> {location} is neither a folder nor a .txt list")
    return images


def label_path_for(image_path: Path) -> Path:
    """``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (the last ``images`` folder is swapped)."""
    text = str(image_path)
    images_part, labels_part = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images_part in text:
        head, tail = text.rsplit(images_part, 1)
        text = head + labels_part + tail
    return Path(text).with_suffix(".txt")


def parse_label_file(label_path: Path, checker: BoxChecker, image_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(class indices [N] int64, normalised cx cy w h [N, 4]) of one label file; bad lines go to ``checker``."""
    if not label_path.is_file():
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4))
    classes, boxes = [], []
    for number, line in enumerate(label_path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_path}:{number}"
        try:
            values = [float(v) for v in fields]
        except ValueError:
            checker.reject(image=image_name, box=line.strip(), reason="a value is not a number",
                           annotation=where, box_format="YOLO line")
            continue
        polygon = len(values) > 5 and len(values) % 2 == 1
        if (len(values) != 5 and not polygon) or values[0] != int(values[0]) or values[0] < 0:
            checker.reject(image=image_name, box=line.strip(), annotation=where, box_format="YOLO line",
                           reason="expected 'class cx cy w h' (or 'class x1 y1 x2 y2 ...') with an integer class >= 0")
            continue
        if polygon:
            xs, ys = np.array(values[1::2]), np.array(values[2::2])
            box = [(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, xs.max() - xs.min(), ys.max() - ys.min()]
        else:
            box = values[1:]
        classes.append(int(values[0]))
        boxes.append(box)
    return np.array(classes, dtype=np.int64), np.array(boxes, dtype=np.float64).reshape(-1, 4)


class YoloDataset(DetectionDataset):
    """A split (``"train"``, ``"val"`` or ``"test"``) of an Ultralytics-style YOLO dataset.

    ``image_id`` is the image's index in the split; ``image_files[image_id]`` its path. Image sizes
    are read from the file headers when the dataset is built (YOLO labels are normalised).
    """

    def __init__(
        self,
        data_yaml: str | Path,
        split: str = "train",
        *,
        transforms: DetectionTransformFn | None = None,
        invalid_boxes: str = "error",
    ) -> None:
        data_yaml = Path(data_yaml)
        root, config, class_names = read_data_yaml(data_yaml)
        if not config.get(split):
            splits = [key for key in ("train", "val", "test") if config.get(key)]
            raise ValueError(f"{data_yaml} has no split {split!r}; it has {splits}")
        image_files = list_images(root, config[split], data_yaml)
        checker = BoxChecker(invalid_boxes, str(data_yaml))
        records = []
        for index, image_path in enumerate(image_files):
            width, height = image_size_from_header(image_path, source=str(data_yaml))
            label_path = label_path_for(image_path)
            classes, normalised = parse_label_file(label_path, checker, image_path.name)
            labels = np.where((classes >= 0) & (classes < len(class_names)), classes + 1, 0)
            scale = np.array([width, height, width, height], dtype=np.float64)
            centre, size = normalised[:, :2], normalised[:, 2:]
            raw = np.concatenate([centre - size / 2, centre + size / 2], axis=1) * scale
            boxes, keep = checker.check(
                raw, labels, width=width, height=height, image=image_path.name,
                class_repr=[f"class index {c}" for c in classes], annotation=str(label_path),
                file_boxes=normalised, box_format="YOLO cx, cy, w, h normalised",
            )
            records.append(
                ImageRecord(
                    path=image_path,
                    file_name=os.path.relpath(image_path, root),
                    image_id=index,
                    width=width,
                    height=height,
                    boxes=boxes[keep],
                    labels=labels[keep].astype(np.int64),
                    annotation_file=str(label_path),
                )
            )
        checker.log_summary()
        self.root = root
        self.split = split
        self.image_files = image_files
        super().__init__(
            records,
            class_names=class_names,
            category_ids=list(range(1, len(class_names) + 1)),
            transforms=transforms,
            problems=checker.problems,
        )
