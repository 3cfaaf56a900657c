"""PASCAL VOC-format detection data: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

VOC boxes are 1-based inclusive pixel indices (``xmin=1, xmax=10`` covers the first ten
columns); they become continuous ``xyxy`` with ``x1 = xmin - 1, x2 = xmax``. Objects marked
``<difficult>1`` are kept and flagged (evaluation ignores them) unless ``keep_difficult=False``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from detkit.data.base import DetectionDataset, DetectionTransformFn, ImageRecord
from detkit.data.image_files import check_image_file
from detkit.data.validation.box_checks import BoxChecker
from detkit.data.validation.problems import ProblemLog

logger = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


_COORDINATES = ("xmin", "ymin", "xmax", "ymax")


def _coordinates(box: ElementTree.Element | None) -> tuple[list[float] | None, str | None]:
    """``<bndbox>``'s four numbers (NaN and inf pass through), or None and why they are malformed."""
    if box is None:
        return None, "the object has no <bndbox>"
    values = []
    for tag in _COORDINATES:
        text = box.findtext(tag)
        if text is None or not text.strip():
            return None, f"<bndbox> has no <{tag}>"
        try:
            values.append(float(text))
        except ValueError:
            return None, f"<{tag}>{text.strip()}</{tag}> is not a number"
    return values, None


def parse_voc_xml(
    xml_path: Path,
) -> tuple[str | None, int, int, list[tuple[str, bool, list[float] | None, str | None]]]:
    """Read one VOC annotation: (filename or None, width, height, objects), each object
    ``(class name, difficult, [xmin, ymin, xmax, ymax] or None, why the box is malformed or None)``.

    Width and height are 0 when the file does not give them. A missing file raises
    FileNotFoundError, one that does not parse ValueError with the parser's line and column.
    """
    try:
        root = ElementTree.parse(xml_path).getroot()
    except FileNotFoundError:
        raise FileNotFoundError(f"VOC annotation file not found: {xml_path}") from None
    except ElementTree.ParseError as error:
        line, column = error.position
        message = re.sub(r": line \d+, column \d+$", "", str(error))  # the position goes to ``where``
        raise ValueError(f"line {line}, column {column + 1}", f"not valid XML: {message}") from None
    size = root.find("size")
    try:
        width, height = (
            (int(float(size.findtext(tag) or 0)) for tag in ("width", "height")) if size is not None else (0, 0)
        )
    except ValueError:
        width, height = 0, 0
    objects = []
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        difficult = (obj.findtext("difficult") or "0").strip() not in ("0", "")
        objects.append((name, difficult, *_coordinates(obj.find("bndbox"))))
    valid_size = width > 0 and height > 0
    return root.findtext("filename"), width if valid_size else 0, height if valid_size else 0, objects


def _resolve_image(image_dir: Path, stem: str, xml_filename: str | None) -> Path:
    candidates = [image_dir / f"{stem}.jpg"]
    if xml_filename:
        candidates.append(image_dir / xml_filename.strip())
    candidates += [image_dir / f"{stem}{suffix}" for suffix in IMAGE_SUFFIXES[1:]]
    # A missing image is reported when it is read, naming the conventional <stem>.jpg path.
    return next((path for path in candidates if path.is_file()), candidates[0])


def count_class_names(annotation_dir: Path) -> Counter[str]:
    """How many objects of each ``<name>`` the XML files of ``annotation_dir`` hold (files that do
    not parse are left to the split's reading, which reports them)."""
    names: Counter[str] = Counter()
    for xml_path in sorted(annotation_dir.glob("*.xml")):
        with contextlib.suppress(ValueError, FileNotFoundError):
            names.update(obj[0] for obj in parse_voc_xml(xml_path)[3])
    return names


def _scan_class_names(annotation_dir: Path) -> list[str]:
    names = count_class_names(annotation_dir)
    if not names:
        raise ValueError(f"class_names='auto' found no <object><name> in {annotation_dir}/*.xml")
    return sorted(names)


def default_class_names(annotation_dir: Path) -> list[str]:
    """The class list when none is given: PASCAL VOC's 20 classes (in their usual label order)
    when every name in the files is one of them, else the names the files use, sorted."""
    found = count_class_names(annotation_dir)
    if not found or set(found) <= set(VOC_CLASSES):
        return list(VOC_CLASSES)
    names = sorted(found)
    where = annotation_dir.parent
    logger.info(
        "VOC data in %s is not PASCAL VOC: %d class names read from its XML files: %s", where, len(names), names
    )
    return names


def check_names_fit(annotation_dir: Path, class_names: Sequence[str], log: ProblemLog) -> None:
    """One clear line where most objects of the files fall outside a given class list: the list
    was meant for other data (PASCAL's 20 classes for a folder of one's own, say)."""
    found = count_class_names(annotation_dir)
    total = sum(found.values())
    outside = sum(count for name, count in found.items() if name not in set(class_names))
    if total == 0 or outside * 2 <= total:
        return
    message = (
        f"{annotation_dir}: {outside} of {total} objects have a class name outside data.class_names "
        f"({len(class_names)} names: {', '.join(list(class_names)[:5])}{', ...' if len(class_names) > 5 else ''}); "
        f"the files use {sorted(found)}. Set data.class_names=[{','.join(sorted(found))}] "
        "(or data.class_names=auto, or leave it unset to read them from the files)"
    )
    if log.policy == "skip":
        logger.warning("%s; their boxes are skipped (data.on_bad_data=skip)", message)
        return
    raise log.fatal("unknown_class", annotation_dir, message.removeprefix(f"{annotation_dir}: "))


class VocDataset(DetectionDataset):
    """A VOC-format split under ``root`` (the folder holding ``Annotations/``, ``JPEGImages/``, ``ImageSets/``).

    ``class_names``: the label order (``class_names[i]`` is label ``i + 1``, category id ``i + 1``);
    None means the 20 PASCAL VOC classes, ``"auto"`` the sorted names found in ``Annotations/``.
    ``image_id`` is the image's index in the split; ``file_stems[image_id]`` its file stem.
    ``on_bad_data`` and ``verify_images``: see ``detkit.data.validation.problems`` and ``DetectionDataset``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "trainval",
        *,
        class_names: Sequence[str] | str | None = None,
        transforms: DetectionTransformFn | None = None,
        on_bad_data: str = "error",
        verify_images: bool = True,
        keep_difficult: bool = True,
    ) -> None:
        root = Path(root)
        annotation_dir, image_dir = root / "Annotations", root / "JPEGImages"
        split_file = root / "ImageSets" / "Main" / f"{split}.txt"
        log = ProblemLog(str(split_file), on_bad_data)
        if not split_file.is_file():
            available = sorted(p.stem for p in split_file.parent.glob("*.txt")) if split_file.parent.is_dir() else []
            raise log.fatal(
                "missing_annotation_file", split_file,
                f"VOC split file not found (splits there: {', '.join(available) or 'none'}); "
                "is data.root the folder holding Annotations/, JPEGImages/ and ImageSets/?",
            )
        if class_names is None:
            class_names = default_class_names(annotation_dir)
        elif isinstance(class_names, str):
            if class_names != "auto":
                raise ValueError(f"class_names must be a list of names, None or 'auto', got {class_names!r}")
            class_names = _scan_class_names(annotation_dir)
        else:
            check_names_fit(annotation_dir, [str(name) for name in class_names], log)
        class_names = [str(name) for name in class_names]
        label_of_name = {name: i + 1 for i, name in enumerate(class_names)}

        listed = [(number, line.split()[0]) for number, line in enumerate(split_file.read_text().splitlines(), 1)
                  if line.strip()]
        stems = [stem for _, stem in listed]
        first_line: dict[str, int] = {}
        records = []
        for index, (line_number, stem) in enumerate(listed):
            if stem in first_line:
                log.add("duplicate_image_id", split_file,
                        f"{stem!r} is listed again (first on line {first_line[stem]}); the repeat is dropped",
                        where=f"line {line_number}")
                log.drop_image()
                continue
            first_line[stem] = line_number
            record = self._read_annotation(stem, index, annotation_dir, image_dir, label_of_name, keep_difficult, log)
            if record is not None:
                records.append(record)
        self.root = root
        self.split = split
        self.file_stems = stems
        # No category ids of their own: the ids are the labels, 1..K.
        super().__init__(
            records, class_names=class_names, transforms=transforms, problems=log, verify_images=verify_images
        )

    @staticmethod
    def _read_annotation(
        stem: str,
        image_id: int,
        annotation_dir: Path,
        image_dir: Path,
        label_of_name: dict[str, int],
        keep_difficult: bool,
        log: ProblemLog,
    ) -> ImageRecord | None:
        """The record of one listed image, or None (problems reported) when its XML is unusable."""
        xml_path = annotation_dir / f"{stem}.xml"
        try:
            xml_filename, width, height, objects = parse_voc_xml(xml_path)
        except FileNotFoundError:
            log.add("missing_annotation_file", xml_path, f"VOC annotation file not found ({stem!r} is in the split)")
            log.drop_image()
            return None
        except ValueError as error:
            where, reason = error.args
            log.add("malformed_annotation_file", xml_path, reason, where=where)
            log.drop_image()
            return None
        image_path = _resolve_image(image_dir, stem, xml_filename)
        if width == 0 or height == 0:  # <size> missing: the image file says
            found = check_image_file(image_path, decode=False)
            if found.size is None:
                log.add(found.kind, image_path, f"{found.reason} (listed in {xml_path}, which gives no <size>)")
            width, height = found.size or (np.inf, np.inf)
        numbered = [(number, obj) for number, obj in enumerate(objects, start=1) if keep_difficult or not obj[1]]
        good = []  # objects whose four coordinates parse; the checker judges their class and geometry
        for number, (name, difficult, coords, malformed) in numbered:
            if malformed:
                if name not in label_of_name:
                    log.add("unknown_class", xml_path, f"class name {name!r} is not one of the dataset's classes",
                            where=f"object {number}", image=image_path.name)
                log.add("malformed_box", xml_path, malformed, where=f"object {number}", image=image_path.name)
                log.dropped_boxes += 1
            else:
                good.append((number, name, difficult, coords))
        file_boxes = np.array([g[3] for g in good], dtype=np.float64).reshape(-1, 4)
        raw = file_boxes.copy()
        raw[:, :2] -= 1.0  # 1-based inclusive -> continuous: the first pixel starts at 0
        labels = np.array([label_of_name.get(g[1], 0) for g in good], dtype=np.int64)
        boxes, keep = BoxChecker(log).check(
            raw, labels, width=width, height=height, file=str(xml_path),
            locate=lambda i: (f"object {good[i][0]}", image_path.name),
            file_boxes=file_boxes, box_format="VOC xmin, ymin, xmax, ymax",
            class_text=lambda i: f"class name {good[i][1]!r} is not one of the dataset's classes",
        )
        if not np.isfinite(width):
            log.drop_image(int(keep.sum()))
            return None
        return ImageRecord(
            path=image_path,
            file_name=image_path.name,
            image_id=image_id,
            width=int(width),
            height=int(height),
            boxes=boxes[keep],
            labels=labels[keep],
            annotation_file=str(xml_path),
            difficult=np.array([g[2] for g in good], dtype=bool).reshape(-1)[keep],
        )
