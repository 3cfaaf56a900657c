"""Capturing a detkit logger's messages in a test, whatever ``setup_logging`` did before.

``setup_logging`` (run by any training in the same process) stops the ``detkit`` logger from
propagating to the root logger, where pytest's ``caplog`` listens; a handler on the logger itself
sees the records either way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class _ListHandler(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def capture_log(name: str) -> Iterator[list[str]]:
    """The messages logged to logger ``name`` (and its children) inside the block, at any level."""
    logger = logging.getLogger(name)
    lines: list[str] = []
    handler = _ListHandler(lines)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
