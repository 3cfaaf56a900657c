"""PASCAL VOC-format detection data: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

VOC boxes are 1-based inclusive pixel indices (``xmin=1, xmax=10`` covers the first ten
columns); they become continuous ``xyxy`` with ``x1 = xmin - 1, x2 = xmax``. Objects marked
``<difficult>1`` are kept and flagged (evaluation ignores them) unless ``keep_difficult=False``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detkit.data.base import (
    BoxChecker,
    DetectionDataset,
    DetectionTransformFn,
    ImageRecord,
    image_size_from_header,
)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _number(element: ElementTree.Element | None, tag: str) -> float:
    text = element.findtext(tag) if element is not None else None
    try:
        return float(text) if text is not None else float("nan")
    except ValueError:
        return float("nan")


def parse_voc_xml(xml_path: Path) -> tuple[str | None, int, int, list[tuple[str, bool, list[float]]]]:
    """Read one VOC annotation: (filename or None, width, height, [(class name, difficult, [xmin, ymin, xmax, ymax])]).

    Width and height are 0 when the file does not give them; coordinates are NaN when missing.
    """
    try:
        root = ElementTree.parse(xml_path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f"VOC annotation file not found: {xml_path}") from None
    except ElementTree.ParseError as error:
        raise ValueError(f"{xml_path} is not valid XML: {error}") from error
    size = root.find("size")
    width, height = _number(size, "width"), _number(size, "height")
    objects = []
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        difficult = (obj.findtext("difficult") or "0").strip() not in ("0", "")
        box = obj.find("bndbox")
        objects.append((name, difficult, [_number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]))
    valid_size = np.isfinite([width, height]).all() and width > 0 and height > 0
    return root.findtext("filename"), int(width) if valid_size else 0, int(height) if valid_size else 0, objects


def _resolve_image(image_dir: Path, stem: str, xml_filename: str | None) -> Path:
    candidates = [image_dir / f"{stem}.jpg"]
    if xml_filename:
        candidates.append(image_dir / xml_filename.strip())
    candidates += [image_dir / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES[1:]]
    # A missing image is reported when it is read, naming the conventional <stem>.jpg path.
    return next((path for path in candidates if path.is_file()), candidates[0])


def _scan_class_names(annotation_dir: Path) -> list[str]:
    names = set()
    for xml_path in sorted(annotation_dir.glob("*.xml")):
        names.update(name for name, _, _ in parse_voc_xml(xml_path)[3])
    if not names:
        raise ValueError(f"class_names='auto' found no <object><name> in {annotation_dir}/*.xml")
    return sorted(names)


class VocDataset(DetectionDataset):
    """A VOC-format split under ``root`` (the folder holding ``Annotations/``, ``JPEGImages/``, ``ImageSets/``).

    ``class_names``: the label order (``class_names[i]`` is label ``i + 1``, category id ``i + 1``);
    None means the 20 PASCAL VOC classes, ``"auto"`` the sorted names found in ``Annotations/``.
    ``image_id`` is the image's index in the split; ``file_stems[image_id]`` its file stem.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        *,
        class_names: Sequence[str] | str | None = None,
        transforms: DetectionTransformFn | None = None,
        invalid_boxes: str = "error",
        keep_difficult: bool = True,
    ) -> None:
        root = Path(root)
        annotation_dir, image_dir = root / "Annotations", root / "JPEGImages"
        split_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            available = sorted(p.stem for p in split_file.parent.glob("*.txt")) if split_file.parent.is_dir() else []
            raise FileNotFoundError(
                f"VOC split file not found: {split_file} (splits there: {', '.join(available) or 'none'}); "
                "is data.root the folder holding Annotations/, JPEGImages/ and ImageSets/?"
            )
        if class_names is None:
            class_names = list(VOC_CLASSES)
        elif isinstance(class_names, str):
            if class_names != "auto":
                raise ValueError(f"class_names must be a list of names, None or 'auto', got {class_names!r}")
            class_names = _scan_class_names(annotation_dir)
        class_names = [str(name) for name in class_names]
        label_of_name = {name: i + 1 for i, name in enumerate(class_names)}

        stems = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        checker = BoxChecker(invalid_boxes, str(split_file))
        records = []
        for index, stem in enumerate(stems):
            xml_path = annotation_dir / f"{stem}.xml"
            xml_filename, width, height, objects = parse_voc_xml(xml_path)
            image_path = _resolve_image(image_dir, stem, xml_filename)
            if width == 0 or height == 0:
                width, height = image_size_from_header(image_path, source=str(xml_path))
            if not keep_difficult:
                objects = [obj for obj in objects if not obj[1]]
            names = [name for name, _, _ in objects]
            file_boxes = np.array([coords for _, _, coords in objects], dtype=np.float64).reshape(-1, 4)
            raw = file_boxes.copy()
            raw[:, :2] -= 1.0  # 1-based inclusive -> continuous: the first pixel starts at 0
            labels = np.array([label_of_name.get(name, 0) for name in names], dtype=np.int64)
            boxes, keep = checker.check(
                raw, labels, width=width, height=height, image=image_path.name, class_repr=names,
                annotation=str(xml_path), file_boxes=file_boxes, box_format="VOC xmin, ymin, xmax, ymax",
            )
            records.append(
                ImageRecord(
                    path=image_path,
                    file_name=image_path.name,
                    image_id=index,
                    width=width,
                    height=height,
                    boxes=boxes[keep],
                    labels=labels[keep],
                    annotation_file=str(xml_path),
                    difficult=np.array([obj[1] for obj in objects], dtype=bool)[keep],
                )
            )
        checker.log_summary()
        self.root = root
        self.split = split
        self.file_stems = stems
        super().__init__(
            records,
            class_names=class_names,
            category_ids=list(range(1, len(class_names) + 1)),
            transforms=transforms,
            problems=checker.problems,
        )
