"""Logging setup for the command-line tools: console plus a log file in the run folder."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Marks handlers this module installed, so a second call replaces them instead of doubling output.
_OWNED = "_detkit_owned"


def setup_logging(
    output_dir: str | Path | None = None,
    rank: int = 0,
    level: int = logging.INFO,
    name: str = "detkit",
) -> logging.Logger:
    """Configure the ``detkit`` logger (all ``detkit.*`` modules log through it).

    Rank 0 logs ``level`` and above to stdout; other ranks only warnings, prefixed with their
    rank, so a multi-GPU console stays readable. With ``output_dir`` every rank also writes a
    file there: ``log.txt`` for rank 0, ``log_rank{rank}.txt`` for the others. Calling it again
    (a second run in the same process) replaces the handlers it added before.
    """
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    for handler in [h for h in logger.handlers if getattr(h, _OWNED, False)]:
        logger.removeHandler(handler)
        handler.close()

    prefix = "" if rank == 0 else f"[rank {rank}] "
    formatter = logging.Formatter(prefix + _FORMAT, datefmt=_DATE_FORMAT)

    console = logging.StreamHandler(sys.stdout)
    console.setLevel(level if rank == 0 else max(level, logging.WARNING))
    console.setFormatter(formatter)
    setattr(console, _OWNED, True)
    logger.addHandler(console)

    if output_dir is not None:
        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        file_name = "log.txt" if rank == 0 else f"log_rank{rank}.txt"
        file_handler = logging.FileHandler(out / file_name, encoding="utf-8")
        file_handler.setLevel(level)
        file_handler.setFormatter(formatter)
        setattr(file_handler, _OWNED, True)
        logger.addHandler(file_handler)
    return logger
