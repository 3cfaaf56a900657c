"""Ultralytics-style YOLO detection data: a data YAML, ``images/`` folders and parallel ``labels/`` folders.

The YAML gives ``path`` (the dataset root; relative to the YAML's folder, default that folder),
``train`` / ``val`` / ``test`` (an image folder, a ``.txt`` list of images, or a list of those,
relative to ``path``) and ``names`` (a list, or a dict ``{index: name}``). The label file of
``.../images/x.jpg`` is ``.../labels/x.txt``: one line ``class cx cy w h`` per object,
normalised to [0, 1], class 0-based; a polygon line ``class x1 y1 x2 y2 ...`` counts as its
bounding box. An empty label file is an image without objects; so is a missing one (as in
Ultralytics), reported as a warning since a lost label file looks the same.

Class index ``k`` becomes label ``k + 1`` and category id ``k + 1`` (COCO tools treat id 0 badly).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import yaml

from detkit.data.base import DetectionDataset, DetectionTransformFn, ImageRecord
from detkit.data.validation.box_checks import BoxChecker
from detkit.data.validation.image_check_cache import checked_image_files
from detkit.data.validation.problems import ProblemLog

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


def read_data_yaml(data_yaml: Path, log: ProblemLog) -> tuple[Path, dict, list[str]]:
    """(dataset root, the YAML mapping, class names) of a YOLO data YAML; raises ``DataError`` when unusable."""
    if not data_yaml.is_file():
        raise log.fatal("missing_annotation_file", data_yaml, "YOLO data YAML not found")
    try:
        config = yaml.safe_load(data_yaml.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise log.fatal("malformed_annotation_file", data_yaml, f"not valid YAML: {problem}", where=where) from None
    if not isinstance(config, dict) or "names" not in config:
        raise log.fatal(
            "malformed_annotation_file", data_yaml, "not a YOLO data YAML: it needs 'names' (and 'train', 'val')"
        )
    names = config["names"]
    if isinstance(names, dict):
        try:
            by_index = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            by_index = {}
        if sorted(by_index) != list(range(len(names))):
            raise log.fatal("malformed_annotation_file", data_yaml,
                            f"'names' keys must be 0..{len(names) - 1}, got {list(names)}")
        names = [by_index[k] for k in range(len(names))]
    if not isinstance(names, list) or not names:
        raise log.fatal(
            "malformed_annotation_file", data_yaml, "'names' must be a non-empty list or a dict {index: name}"
        )
    if "nc" in config and str(config["nc"]) != str(len(names)):
        raise log.fatal(
            "malformed_annotation_file", data_yaml, f"nc={config['nc']} but 'names' has {len(names)} entries"
        )
    root = Path(config.get("path") or ".")
    if not root.is_absolute():
        root = data_yaml.parent / root
    return root, config, [str(n) for n in names]


def list_images(root: Path, entry: str | list, data_yaml: Path, log: ProblemLog) -> list[Path]:
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
            raise log.fatal("missing_image", location,
                            f"split entry {item!r} of {data_yaml} is neither a folder nor a .txt list of images")
    return images


def label_path_for(image_path: Path) -> Path:
    """``.../images/a/b.jpg`` -> ``.../labels/a/b.txt`` (the last ``images`` folder is swapped)."""
    text = str(image_path)
    images_part, labels_part = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images_part in text:
        head, tail = text.rsplit(images_part, 1)
        text = head + labels_part + tail
    return Path(text).with_suffix(".txt")


def parse_label_file(label_path: Path, log: ProblemLog, image_name: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(class indices [N] int64, normalised cx cy w h [N, 4], line numbers [N]) of one label file.

    Lines that do not parse are reported to ``log`` (and left out); a missing file is a warning
    and gives no objects, as Ultralytics treats it.
    """
    if not label_path.is_file():
        log.add("missing_label_file", label_path,
                "no label file: the image is used as an image without objects (an empty file says that explicitly)",
                image=image_name)
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4)), []
    classes, boxes, numbers = [], [], []
    for number, line in enumerate(label_path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        polygon = len(fields) > 5 and len(fields) % 2 == 1
        if len(fields) != 5 and not polygon:
            log.add("wrong_field_count", label_path,
                    f"{len(fields)} fields in {line.strip()!r}; expected 'class cx cy w h' (5) or a polygon "
                    "'class x1 y1 x2 y2 x3 y3 ...' (an odd count from 7)", where=where, image=image_name)
            log.dropped_boxes += 1
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            bad = next(v for v in fields if not _is_number(v))
            log.add("malformed_value", label_path, f"{bad!r} is not a number in {line.strip()!r}",
                    where=where, image=image_name)
            log.dropped_boxes += 1
            continue
        if not np.isfinite(values[0]) or values[0] != int(values[0]):
            log.add("malformed_value", label_path, f"class {fields[0]!r} is not an integer in {line.strip()!r}",
                    where=where, image=image_name)
            log.dropped_boxes += 1
            continue
        if polygon:
            xs, ys = np.array(values[1::2]), np.array(values[2::2])
            box = [(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, xs.max() - xs.min(), ys.max() - ys.min()]
        else:
            box = values[1:]
        classes.append(int(values[0]))
        boxes.append(box)
        numbers.append(number)
    return np.array(classes, dtype=np.int64), np.array(boxes, dtype=np.float64).reshape(-1, 4), numbers


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class YoloDataset(DetectionDataset):
    """A split (``"train"``, ``"val"`` or ``"test"``) of an Ultralytics-style YOLO dataset.

    ``image_id`` is the image's index in the split; ``image_files[image_id]`` its path. Image sizes
    are read from the file headers when the dataset is built (YOLO labels are normalised), so a
    YOLO dataset cannot disagree with its image sizes. ``on_bad_data`` and ``verify_images``: see
    ``detkit.data.validation.problems`` and ``DetectionDataset``.
    """

    def __init__(
        self,
        data_yaml: str | Path,
        split: str = "train",
        *,
        transforms: DetectionTransformFn | None = None,
        on_bad_data: str = "error",
        verify_images: bool = True,
    ) -> None:
        data_yaml = Path(data_yaml)
        log = ProblemLog(str(data_yaml), on_bad_data)
        root, config, class_names = read_data_yaml(data_yaml, log)
        if not config.get(split):
            splits = [key for key in ("train", "val", "test") if config.get(key)]
            raise ValueError(f"{data_yaml} has no split {split!r}; it has {splits}")
        image_files = list_images(root, config[split], data_yaml, log)
        # Images sharing one label file (a.jpg and a.png -> labels/a.txt): which one it labels is unknown.
        by_label: dict[Path, list[Path]] = {}
        for image_path in dict.fromkeys(image_files):
            by_label.setdefault(label_path_for(image_path), []).append(image_path)
        listed = Counter(image_files)
        seen: set[Path] = set()
        records = []
        # Sizes come from the image headers: read once per job and remembered between starts.
        unique_files = list(dict.fromkeys(image_files))
        headers = checked_image_files(unique_files, decode=False, source=str(data_yaml))
        header_of = dict(zip(unique_files, headers, strict=True))
        for index, image_path in enumerate(image_files):
            if image_path in seen:  # the same file listed again: the first entry stays
                log.drop_image()
                continue
            seen.add(image_path)
            if listed[image_path] > 1:
                log.add("duplicate_file_name", image_path,
                        f"listed {listed[image_path]} times in the {split!r} split of {data_yaml}; "
                        "the first is kept, the others dropped")
            label_path = label_path_for(image_path)
            sharing = by_label[label_path]
            if len(sharing) > 1 and image_path != sharing[0]:
                log.drop_image()  # reported, and its labels checked, with the first image of the group
                continue
            found = header_of[image_path]
            if found.size is None:
                log.add(found.kind, image_path, f"{found.reason} (listed in the {split!r} split of {data_yaml})")
            record = self._read_labels(index, image_path, label_path, found.size, root, class_names, log)
            if len(sharing) > 1:
                names = ", ".join(p.name for p in sharing)
                log.add("duplicate_file_name", label_path,
                        f"images {names} share this label file; which one it labels is unknown, so all are dropped")
                if record is not None:
                    log.drop_image(len(record.boxes))
            elif record is not None:
                records.append(record)
        self.root = root
        self.split = split
        self.image_files = image_files
        # No category ids of their own: the ids are the labels, 1..K.
        super().__init__(
            records, class_names=class_names, transforms=transforms, problems=log, verify_images=verify_images
        )

    @staticmethod
    def _read_labels(
        index: int, image_path: Path, label_path: Path, size: tuple[int, int] | None, root: Path,
        class_names: list[str], log: ProblemLog,
    ) -> ImageRecord | None:
        """The record of one image, or None when its file cannot be read (its labels are still checked)."""
        classes, normalised, numbers = parse_label_file(label_path, log, image_path.name)
        count = len(class_names)
        labels = np.where((classes >= 0) & (classes < count), classes + 1, 0)
        # Without a readable image the lines are still checked, in normalised units (a 1x1 image).
        width, height = size or (1, 1)
        scale = np.array([width, height, width, height], dtype=np.float64)
        centre, extent = normalised[:, :2], normalised[:, 2:]
        raw = np.concatenate([centre - extent / 2, centre + extent / 2], axis=1) * scale
        boxes, keep = BoxChecker(log, tolerance=1.0 if size else 0.01).check(
            raw, labels, width=width, height=height, file=str(label_path),
            locate=lambda i: (f"line {numbers[i]}", image_path.name),
            file_boxes=normalised, box_format="YOLO cx, cy, w, h normalised",
            class_text=lambda i: f"class index {classes[i]} is outside 0..{count - 1} ({count} names)",
            unknown_kind="class_out_of_range",
        )
        if size is None:
            log.drop_image(int(keep.sum()))
            return None
        return ImageRecord(
            path=image_path,
            file_name=os.path.relpath(image_path, root),
            image_id=index,
            width=width,
            height=height,
            boxes=boxes[keep],
            labels=labels[keep].astype(np.int64),
            annotation_file=str(label_path),
        )
