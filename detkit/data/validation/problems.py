"""Problems found in a dataset's files, and the one policy that decides what happens to them.

Every loader (COCO, VOC, YOLO) reports what is wrong with its files into a ``ProblemLog``
instead of stopping at the first bad box; ``DetectionDataset`` adds what the image files show
(missing, unreadable, truncated, another size than annotated) and then applies ``on_bad_data``:

- ``"error"`` (default): one :class:`DataError` naming every error-level problem at once (the
  first ``MAX_LISTED`` in the message, all of them in the problem report file when there is one);
- ``"skip"``: exactly the bad items are dropped (a bad box alone; an image whose file or
  annotation cannot be used, whole), counted and logged; everything else stays, images without
  objects included.

Warnings (``KINDS[kind][0] == "warning"``) never stop anything and never drop anything: the data
is usable as it is (a box partly outside its image is clipped), but it may be a mistake.

A problem names its file and, inside it, where: ``line 3`` (YOLO label, split list, XML/JSON
syntax), ``annotation id 17`` / ``images[4]`` (COCO), ``object 2`` (VOC ``<object>``, counted
from 1).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ON_BAD_DATA = ("error", "skip")
MAX_LISTED = 50  # problems spelled out in an error message; the report file has all of them

# kind -> (severity, what it is, what on_bad_data="skip" does with the item)
KINDS: dict[str, tuple[str, str, str]] = {
    "bad_box_size": ("error", "zero or negative box width or height", "box dropped"),
    "box_outside_image": ("error", "box wholly outside its image", "box dropped"),
    "non_finite_coordinate": ("error", "NaN or infinite coordinate", "box dropped"),
    "malformed_box": ("error", "box coordinates missing or not numbers", "box dropped"),
    "unknown_class": ("error", "class name or category id not in the dataset's classes", "box dropped"),
    "class_out_of_range": ("error", "class index outside 0..C-1 (YOLO)", "box dropped"),
    "wrong_field_count": ("error", "label line without 5 fields (or a polygon's odd count)", "box dropped"),
    "malformed_value": ("error", "a label field that is not a number, or a non-integer class", "box dropped"),
    "unknown_image_id": ("error", "annotation for an image id the file does not list", "box dropped"),
    "missing_annotation_file": ("error", "annotation file not found", "image dropped"),
    "malformed_annotation_file": ("error", "annotation file that does not parse, or lacks a field", "image dropped"),
    "missing_image": ("error", "image file not found", "image dropped"),
    "unreadable_image": ("error", "image file that does not decode", "image dropped"),
    "truncated_image": ("error", "image file cut short", "image dropped"),
    "image_size_mismatch": ("error", "image file of another size than annotated", "image dropped"),
    "exif_rotation_swaps_size": ("error", "EXIF orientation turns the image: width and height swap against the "
                                 "annotation", "image dropped"),
    "non_finite_image": ("error", "image file with NaN or infinite pixel values", "image dropped"),
    "duplicate_image_id": ("error", "image id (COCO) or VOC stem listed more than once", "image dropped"),
    "duplicate_file_name": ("error", "image file listed more than once, or sharing a label file", "image dropped"),
    "box_partly_outside": ("warning", "box reaching more than 1 px outside its image", "clipped"),
    "missing_label_file": ("warning", "YOLO image without a label file", "kept as an image without objects"),
    "duplicate_box": ("warning", "the same box and class twice in one image", "kept"),
    "class_without_boxes": ("warning", "class without any box in the split", "kept"),
}


@dataclass(frozen=True)
class Problem:
    """One problem: its ``kind`` (a key of ``KINDS``), the ``file`` it is in, ``where`` in that file
    (or None), the ``image`` file name concerned when ``file`` is an annotation file, and ``reason``."""

    kind: str
    file: str | None
    reason: str
    where: str | None = None
    image: str | None = None
    fatal: bool = False  # a file without which the split cannot be read at all

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown problem kind {self.kind!r}; one of {sorted(KINDS)}")

    @property
    def severity(self) -> str:
        return KINDS[self.kind][0]

    @property
    def action(self) -> str:
        """What ``on_bad_data="skip"`` does with the item."""
        return "nothing can be loaded" if self.fatal else KINDS[self.kind][2]

    def as_dict(self) -> dict:
        return {**asdict(self), "severity": self.severity, "action": self.action}

    @classmethod
    def from_dict(cls, values: dict) -> Problem:
        """The problem ``as_dict`` wrote (its derived keys ignored)."""
        return cls(values["kind"], values["file"], values["reason"], values.get("where"), values.get("image"),
                   bool(values.get("fatal", False)))

    def __str__(self) -> str:
        place = (self.file or "(dataset)") + (f", {self.where}" if self.where else "")
        image = f" (image {self.image})" if self.image and self.image not in place else ""
        return f"{place}{image}: {self.reason} [{self.kind}]"


class DataError(ValueError):
    """Bad data under ``on_bad_data="error"``, or a file without which nothing can be loaded.
    ``problems`` holds every problem found (warnings included)."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


_report_file: ContextVar[Path | None] = ContextVar("detkit_data_problem_report", default=None)


@contextlib.contextmanager
def problem_report(path: str | Path | None) -> Iterator[None]:
    """Within this block, datasets that find problems append every one of them to ``path``
    (JSON Lines, one problem per line with its ``source``) and name that file in their error or
    log message. ``None`` writes nothing (e.g. on the non-zero ranks of a distributed run)."""
    token = _report_file.set(Path(path) if path is not None else None)
    try:
        yield
    finally:
        _report_file.reset(token)


def _kind_counts(problems: list[Problem]) -> str:
    counts = Counter(p.kind for p in problems)
    return ", ".join(f"{count} {kind}" for kind, count in counts.most_common())


class ProblemLog:
    """The problems of one dataset split, collected while it is read; ``source`` names the split
    (its annotation file, split list or data YAML) in messages."""

    def __init__(self, source: str, on_bad_data: str = "error") -> None:
        if on_bad_data not in ON_BAD_DATA:
            raise ValueError(f"on_bad_data must be one of {ON_BAD_DATA}, got {on_bad_data!r}")
        self.source = source
        self.policy = on_bad_data
        self.problems: list[Problem] = []
        # What "skip" took out: bad boxes, whole images, and the good boxes those images held.
        self.dropped_boxes = 0
        self.dropped_images = 0
        self.boxes_in_dropped_images = 0

    def add(self, kind: str, file: str | Path | None, reason: str, *, where: str | None = None,
            image: str | None = None) -> None:
        self.problems.append(Problem(kind, str(file) if file is not None else None, reason, where, image))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def fatal(self, kind: str, file: str | Path, reason: str, *, where: str | None = None) -> DataError:
        """The error for a file without which nothing can be read (raised under either policy)."""
        self.problems.append(Problem(kind, str(file), reason, where, fatal=True))
        return DataError(str(self.problems[-1]), list(self.problems))

    def drop_image(self, good_boxes: int = 0) -> None:
        self.dropped_images += 1
        self.boxes_in_dropped_images += good_boxes

    def _write_report(self, policy: str) -> Path | None:
        path = _report_file.get()
        if path is None or not self.problems:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as stream:
            for problem in self.problems:
                stream.write(json.dumps({"source": self.source, "on_bad_data": policy, **problem.as_dict()}) + "\n")
        return path

    def apply(self, *, kept_images: int, kept_boxes: int) -> None:
        """Raise (``"error"`` with any error-level problem) or log what was dropped (``"skip"``);
        warnings are logged under either policy."""
        policy = self.policy
        report = self._write_report(policy)
        where_all = f"; all of them are in {report}" if report else ""
        errors, warnings = self.errors, self.warnings
        if errors and policy == "error":
            listed = "\n".join(f"  {p}" for p in errors[:MAX_LISTED])
            more = (
                f"\n  ... and {len(errors) - MAX_LISTED} more (`detkit check` with the same data arguments lists "
                f"every one{where_all})"
                if len(errors) > MAX_LISTED
                else ""
            )
            also = f" (and {len(warnings)} warning(s))" if warnings else ""
            raise DataError(
                f"{self.source}: {len(errors)} problem(s) in the data{also}: {_kind_counts(errors)}\n{listed}{more}\n"
                "Fix them, or set on_bad_data='skip' (data.on_bad_data=skip) to drop exactly the bad boxes "
                "and images, counted and logged.",
                list(self.problems),
            )
        if errors:
            shown = "; ".join(str(p) for p in errors[:5]) + ("; ..." if len(errors) > 5 else "")
            logger.warning(
                "%s: on_bad_data='skip' dropped %d bad box(es) and %d image(s) (holding %d more box(es)) for %d "
                "problem(s) (%s); kept %d image(s) with %d box(es). %s%s",
                self.source, self.dropped_boxes, self.dropped_images, self.boxes_in_dropped_images, len(errors),
                _kind_counts(errors), kept_images, kept_boxes, shown, where_all,
            )
        if warnings:
            shown = "; ".join(str(p) for p in warnings[:3]) + ("; ..." if len(warnings) > 3 else "")
            logger.warning("%s: %d warning(s) (%s): %s%s", self.source, len(warnings), _kind_counts(warnings),
                           shown, where_all)
