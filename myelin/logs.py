"""Logging set-up: readable text for people, one JSON object per line for log collectors.

Records are buffered and written in batches (``BufferedHandler``): with the access log on,
one ``write`` to stderr per request was ~10% of the CPU time of a busy /sync long-poll load.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading

import orjson

from myelin.config import LoggingConfig


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


FLUSH_INTERVAL_S = 0.5
BUFFERED_RECORDS = 500


class BufferedHandler(logging.handlers.MemoryHandler):
    """Holds records and hands them to ``target`` at most ``FLUSH_INTERVAL_S`` late: when
    ``BUFFERED_RECORDS`` are held, at once for a WARNING or worse (so a failure is never left
    waiting behind routine lines), and otherwise from a timer thread. ``logging.shutdown``
    (at interpreter exit) flushes what is left; a killed process loses at most the last
    interval, as with Synapse's buffered file handler."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__(BUFFERED_RECORDS, flushLevel=logging.WARNING, target=target,
                         flushOnClose=True)
        self._stopped = threading.Event()
        threading.Thread(target=self._flush_periodically, name="log-flush", daemon=True).start()

    def _flush_periodically(self) -> None:
        while not self._stopped.wait(FLUSH_INTERVAL_S):
            if self.buffer:
                self.flush()

    def flush(self) -> None:
        # One write for the whole batch; under the lock, so batches never interleave.
        self.acquire()
        try:
            records, self.buffer = self.buffer, []
            if self.target is not None and records:
                self._write(self.target, records)
        finally:
            self.release()

    @staticmethod
    def _write(target: logging.Handler, records: list[logging.LogRecord]) -> None:
        if not isinstance(target, logging.StreamHandler):
            for record in records:
                target.handle(record)
            return
        lines = []
        for record in records:
            if record.levelno < target.level or not target.filter(record):
                continue
            try:
                lines.append(target.format(record) + target.terminator)
            except Exception:
                target.handleError(record)
        target.acquire()
        try:
            target.stream.write("".join(lines))
            target.stream.flush()
        except Exception:
            target.handleError(records[-1])
        finally:
            target.release()

    def close(self) -> None:
        self._stopped.set()
        super().close()


def setup_logging(config: LoggingConfig) -> None:
    stream = logging.StreamHandler(sys.stderr)
    if config.format == "json":
        stream.setFormatter(JsonFormatter())
    else:
        stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, BufferedHandler):
            old.close()  # flushes it, and stops its timer thread
    root.handlers[:] = [BufferedHandler(stream)]
    root.setLevel(config.level)
    if not config.access_log:
        logging.getLogger("myelin.access").setLevel(logging.WARNING)
