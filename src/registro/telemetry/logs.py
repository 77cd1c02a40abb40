"""Logs as one JSON object per line on stdout, for the platform's log collector.

Structured fields travel in `extra={"fields": {...}}`; nothing else from a record is copied, so
a caller cannot leak a header or a secret by accident.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime

import orjson


def _time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class AccessLog:
    """The one line per request, in the same shape as every other log line.

    Written straight to stdout rather than through `logging`: it is on every request, and the
    logging machinery (records, caller lookup, handler locks) costs more than the line itself.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def write(self, fields: dict[str, object]) -> None:
        if not self.enabled:
            return
        entry = {
            "time": _time(time.time()),
            "level": "INFO",
            "logger": "registro.access",
            "message": "request",
            **fields,
        }
        sys.stdout.buffer.write(orjson.dumps(entry) + b"\n")
        sys.stdout.flush()


access_log = AccessLog(enabled=False)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # AccessLog writes the one line per request; uvicorn's own would be a second.
    logging.getLogger("uvicorn.access").disabled = True
    access_log.enabled = root.getEffectiveLevel() <= logging.INFO
