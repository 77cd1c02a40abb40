"""Logs as one JSON object per line on stdout, for the platform's log collector, or as plain
text lines for a person (REGISTRO_LOG_FORMAT; text is the default in dev only).

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


_HEAD = frozenset({"time", "level", "logger", "message", "exception"})


def _value(value: object) -> str:
    text = str(value)
    return orjson.dumps(text).decode() if not text or any(c.isspace() for c in text) else text


def text_line(entry: dict[str, object]) -> str:
    """`HH:MM:SS.mmm LEVEL logger: message key=value ...`, the time of day in UTC."""
    head = f"{str(entry['time'])[11:23]} {entry['level']:<7} {entry['logger']}: {entry['message']}"
    fields = " ".join(f"{k}={_value(v)}" for k, v in entry.items() if k not in _HEAD)
    line = f"{head} {fields}" if fields else head
    return f"{line}\n{entry['exception']}" if "exception" in entry else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(self.entry(record), default=str).decode()

    def entry(self, record: logging.LogRecord) -> dict[str, object]:
        entry: dict[str, object] = {
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
        return entry


class TextFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return text_line(self.entry(record))


class AccessLog:
    """The one line per request, in the same shape as every other log line.

    Written straight to stdout rather than through `logging`: it is on every request, and the
    logging machinery (records, caller lookup, handler locks) costs more than the line itself.
    """

    def __init__(self, enabled: bool, text: bool = False) -> None:
        self.enabled = enabled
        self.text = text

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
        line = text_line(entry).encode() if self.text else orjson.dumps(entry)
        sys.stdout.buffer.write(line + b"\n")
        sys.stdout.flush()


access_log = AccessLog(enabled=False)


def configure_logging(level: str, *, log_format: str = "json") -> None:
    text = log_format == "text"
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # AccessLog writes the one line per request; uvicorn's own would be a second.
    logging.getLogger("uvicorn.access").disabled = True
    access_log.enabled = root.getEffectiveLevel() <= logging.INFO
    access_log.text = text
