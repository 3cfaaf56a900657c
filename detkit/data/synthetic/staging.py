"""How a generated data folder comes into place: written into a temporary sibling, marked complete
last and renamed, so an interrupted run or several processes generating at once (DDP ranks) never
leave a half-written folder behind; a folder without the marker is generated again."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

COMPLETE_MARKER = "COMPLETE"


@contextmanager
def staged_folder(folder: Path, params: Any, *, replace_complete: bool) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write into; when the block ends without an error it
    gets the completion marker (``params``, a dataclass, as JSON) and is renamed to ``folder``.
    An existing ``folder`` is removed first (``replace_complete=False``: only one without the
    marker, left by an interrupted run); a rename that fails because another process was first
    is not an error."""
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        yield staging
        (staging / COMPLETE_MARKER).write_text(json.dumps(asdict(params), indent=1))  # written last
        if folder.exists() and (replace_complete or not (folder / COMPLETE_MARKER).is_file()):
            shutil.rmtree(folder)  # left half-written by an interrupted run
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / COMPLETE_MARKER).is_file():  # anything but "another process was first"
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
