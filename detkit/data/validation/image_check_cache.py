"""What checking each image file found, remembered between runs and shared between ranks, so a
training start decodes only the files that are new or changed since the last one.

Checking decodes every image once (``detkit.data.image_files``): seconds for a few thousand
images, minutes for a hundred thousand, at every start and on every DDP rank. A file's verdict
depends only on its bytes, so it is kept keyed by the file's absolute path, size and modification
time (``st_mtime_ns``), the way build tools and ``git status`` tell a changed file; a file whose
size or time differs, or that is gone, is checked again.

A file modified within ``RACY_SECONDS`` of the check is not remembered: file systems stamp times
at the kernel's tick, so a second same-sized write in that tick would keep the old key (git's
"racily clean" entries, handled the same way).

Layout: ``$DETKIT_CACHE/image_checks/<hash of the split's source>.json`` (else
``~/.cache/detkit/image_checks``), one JSON file per annotation source, written atomically. Splits
that share a source (a YOLO data YAML) share the file: a check updates the entries of its own
files and leaves the others as they are.
``DETKIT_IMAGE_CHECK_CACHE=0`` turns the memory off (every file decoded each time). In a
distributed job, rank 0 checks and broadcasts the verdicts; the other ranks read no file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from detkit.data import image_files
from detkit.data.image_files import ImageCheck

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
RACY_SECONDS = 2.0
T = TypeVar("T")


def default_cache_dir() -> Path:
    """``$DETKIT_CACHE/image_checks`` when DETKIT_CACHE is set, else ``~/.cache/detkit/image_checks``."""
    cache = os.environ.get("DETKIT_CACHE")
    return (Path(cache) if cache else Path.home() / ".cache" / "detkit") / "image_checks"


def cache_file(source: str, root: str | os.PathLike | None = None) -> Path:
    """Where the verdicts of the split named by ``source`` (its annotation file, split list or YAML) live."""
    key = hashlib.blake2b(os.path.abspath(source).encode(), digest_size=12).hexdigest()
    return Path(root if root is not None else default_cache_dir()) / f"{key}.json"


def _read(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent, or not ours: start afresh
        return {}
    if (
        not isinstance(data, dict)
        or data.get("version") != CACHE_VERSION
        or not isinstance(data.get("files"), dict)
    ):
        return {}
    return data["files"]


def _write(path: Path, files: dict[str, list]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump({"version": CACHE_VERSION, "files": files}, stream, separators=(",", ":"))
        os.replace(temporary, path)
    except OSError as error:  # a read-only home must not stop training: it only costs time
        logger.warning(
            "could not remember the image checks in %s (%s); the next start decodes every image again",
            path,
            error,
        )


def _entry(stat: os.stat_result, decoded: bool, found: ImageCheck) -> list:
    width, height = found.size if found.size is not None else (None, None)
    return [
        stat.st_size,
        stat.st_mtime_ns,
        decoded,
        width,
        height,
        found.orientation,
        found.kind,
        found.reason,
    ]


def _from_entry(entry: list) -> ImageCheck:
    _, _, _, width, height, orientation, kind, reason = entry
    size = (int(width), int(height)) if width is not None else None
    return ImageCheck(size, kind, reason, int(orientation))


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def check_with_memory(
    paths: Sequence[Path], *, decode: bool, source: str, cache_dir: str | os.PathLike | None = None
) -> list[ImageCheck]:
    """``check_image_files(paths)``, decoding only the files whose verdict is not remembered in
    ``cache_file(source)`` under the same size and time (a headers-only verdict does not stand in
    for ``decode``). The cache then holds ``paths``' current verdicts (a file that is gone is
    forgotten) beside the entries of other files checked under the same ``source``."""
    keys = [os.path.abspath(path) for path in paths]
    # Taken before checking: a file that changes meanwhile keeps its old key and is checked again next time.
    stats = [_stat(key) for key in keys]
    target = cache_file(source, cache_dir)
    remembered = _read(target)
    results: list[ImageCheck | None] = [None] * len(paths)
    todo: list[int] = []
    for index, (key, stat) in enumerate(zip(keys, stats, strict=True)):
        entry = remembered.get(key)
        if (
            stat is not None
            and isinstance(entry, list)
            and len(entry) == 8
            and entry[0] == stat.st_size
            and entry[1] == stat.st_mtime_ns
            and (entry[2] or not decode)
        ):
            results[index] = _from_entry(entry)
        else:
            todo.append(index)
    for index, found in zip(
        todo, image_files.check_image_files([paths[i] for i in todo], decode=decode), strict=True
    ):
        results[index] = found
    checked_now = set(todo)
    settled = time.time_ns() - int(RACY_SECONDS * 1e9)
    files = dict(remembered)
    for index, (key, stat, found) in enumerate(zip(keys, stats, results, strict=True)):
        if stat is None or found.kind == "missing_image" or stat.st_mtime_ns > settled:
            files.pop(key, None)
            continue
        entry = remembered.get(key)
        files[key] = entry if index not in checked_now and entry is not None else _entry(stat, decode, found)
    if files != remembered:
        _write(target, files)
    return results


def shared_from_rank_zero(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0 and its result on every rank of an initialised ``torch.distributed``
    group; ``compute()`` itself otherwise. An exception on rank 0 is raised on every rank (the
    others would wait forever for a result). torch is not imported here: without it loaded, no
    group can exist, and the data tools start faster without it."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return compute()
    box: list[Any] = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ("ok", compute())
        except Exception as error:
            box[0] = ("error", f"{type(error).__name__}: {error}")
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise RuntimeError(f"checking the image files failed on rank 0: {value}")
    return value


def checked_image_files(paths: Sequence[Path], *, decode: bool, source: str) -> list[ImageCheck]:
    """The verdicts of ``paths``: computed once per job (rank 0, see :func:`shared_from_rank_zero`),
    remembered between runs unless ``DETKIT_IMAGE_CHECK_CACHE=0``."""
    if os.environ.get("DETKIT_IMAGE_CHECK_CACHE", "1").lower() in ("0", "false", "no", "off"):
        return shared_from_rank_zero(lambda: image_files.check_image_files(paths, decode=decode))
    return shared_from_rank_zero(lambda: check_with_memory(paths, decode=decode, source=source))
