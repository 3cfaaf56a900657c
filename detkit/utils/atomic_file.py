"""Writing a file so that a reader never sees it half-written: into a temporary file beside it,
flushed to disk, then renamed over it (``os.replace`` is atomic within one folder)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_file(
    path: Path, mode: str, *, permissions: int | None = None, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """The open temporary file (``mode``: ``"wb"`` or ``"w"``) to write ``path``'s content into. When
    the block ends it replaces ``path``; on any error (an interrupt too) it is removed and ``path``
    is left as it was. ``permissions``: set on the file before writing (mkstemp makes it 0600)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if permissions is not None:
            os.chmod(temporary, permissions)
        with os.fdopen(handle, mode, encoding=encoding) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
