"""Suite-wide test isolation."""

import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_detkit_logger():
    # A training run in the test process (launch.train) configures the "detkit" logger for a
    # console user: its own handlers and no propagation, which would hide later tests' records
    # from pytest's caplog. Put the logger back as it was after every test.
    logger = logging.getLogger("detkit")
    saved = (logger.propagate, list(logger.handlers), logger.level)
    yield
    for handler in [h for h in logger.handlers if h not in saved[1]]:
        logger.removeHandler(handler)
        handler.close()
    logger.propagate, logger.level = saved[0], saved[2]
