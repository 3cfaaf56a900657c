"""Suite-wide test isolation."""

import logging
from contextlib import contextmanager

import pytest


@contextmanager
def _detkit_logger_kept():
    # A training run in the test process (launch.train) configures the "detkit" logger for a
    # console user: its own handlers and no propagation, which would hide later tests' records
    # from pytest's caplog. Put the logger back as it was.
    logger = logging.getLogger("detkit")
    saved = (logger.propagate, list(logger.handlers), logger.level)
    try:
        yield
    finally:
        for handler in [h for h in logger.handlers if h not in saved[1]]:
            logger.removeHandler(handler)
            handler.close()
        logger.propagate, logger.level = saved[0], saved[2]


@pytest.fixture(autouse=True)
def _restore_detkit_logger_per_test():
    with _detkit_logger_kept():
        yield


@pytest.fixture(autouse=True, scope="module")
def _restore_detkit_logger_per_module():
    # Module-scoped fixtures that train (shared runs) are set up before the per-test fixture
    # saves the logger, so that one would keep their settings; this one restores them when the
    # module ends.
    with _detkit_logger_kept():
        yield
