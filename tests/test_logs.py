"""The buffered log handler: late by at most an interval, never for a warning, never lost."""

from __future__ import annotations

import io
import logging
import time

from myelin import logs


def _handler() -> tuple[logs.BufferedHandler, io.StringIO]:
    out = io.StringIO()
    target = logging.StreamHandler(out)
    target.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return logs.BufferedHandler(target), out


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.logs.{id(handler)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    return logger


def test_info_lines_are_written_together_within_the_interval() -> None:
    handler, out = _handler()
    logger = _logger(handler)
    for n in range(3):
        logger.info("line %d", n)
    assert out.getvalue() == ""
    deadline = time.monotonic() + logs.FLUSH_INTERVAL_S * 6
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.getvalue() == "INFO line 0\nINFO line 1\nINFO line 2\n"
    handler.close()


def test_a_warning_is_written_at_once_after_what_came_before() -> None:
    handler, out = _handler()
    logger = _logger(handler)
    logger.info("routine")
    logger.warning("trouble")
    assert out.getvalue() == "INFO routine\nWARNING trouble\n"
    handler.close()


def test_a_full_buffer_is_written_at_once() -> None:
    handler, out = _handler()
    logger = _logger(handler)
    for n in range(logs.BUFFERED_RECORDS):
        logger.info("n%d", n)
    assert out.getvalue().count("\n") == logs.BUFFERED_RECORDS
    handler.close()


def test_closing_writes_what_is_left() -> None:
    handler, out = _handler()
    _logger(handler).info("last words")
    handler.close()
    assert out.getvalue() == "INFO last words\n"


def test_setup_logging_replaces_and_flushes_the_previous_handler() -> None:
    from myelin.config import LoggingConfig

    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    try:
        logs.setup_logging(LoggingConfig())
        first = root.handlers[0]
        assert isinstance(first, logs.BufferedHandler)
        logs.setup_logging(LoggingConfig())
        assert len(root.handlers) == 1 and root.handlers[0] is not first
        assert first.target is None  # closed
        root.handlers[0].close()
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
