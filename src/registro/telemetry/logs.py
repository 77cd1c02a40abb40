"""Logs as one JSON object per line on stdout, for the platform's log collector, or as plain
text lines for a person (REGISTRO_LOG_FORMAT; text is the default in dev only).

Structured fields travel in `extra={"fields": {...}}`; nothing else from a record is copied, so
a caller cannot leak a header or a secret by accident.

Nothing on the event loop ever waits for stdout: a line is formatted where it is logged, then
offered to a bounded buffer that one thread writes out. When stdout is slow or not read at all (a
stalled log driver), the buffer fills and further lines are dropped and counted
(`registro_log_lines_dropped_total`) rather than stalling the worker, `/livez` included.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime

import orjson

QUEUE_LINES = 10_000  # about 3 MB of access lines: seconds of a burst, bounded memory
BATCH_LINES = 256
# How often the writer looks for lines: at most 5 wake-ups a second. The queue holds what 50,000
# lines a second leave between two, several times what a worker logs at full load.
WAKE_SECONDS = 0.2
STOP_SECONDS = 1.0  # at exit, how long pending lines may take to be written
STDOUT = 1


# The second of the last line's time, and its text: a line is written for every request, and
# formatting the date and time of day anew for each cost about 40% of the line (timeit).
_second: tuple[int, str] = (-1, "")


def _time(timestamp: float) -> str:
    """ISO 8601 in UTC, truncated to the millisecond: `2026-12-06T18:33:10.123+00:00`."""
    global _second
    second = int(timestamp)
    cached = _second  # one tuple, so a thread that logs meanwhile never sees half of it
    if cached[0] != second:
        cached = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        _second = cached
    return f"{cached[1]}.{int((timestamp - second) * 1000):03d}+00:00"


_HEAD = frozenset({"time", "level", "logger", "message", "exception"})


def _value(value: object) -> str:
    """As is when plain; else quoted as a JSON string, with every character that is not
    printable escaped (a request's path may carry ESC and other terminal controls)."""
    text = str(value)
    if text and text.isprintable() and " " not in text:
        return text
    quoted = orjson.dumps(text).decode()  # escapes U+0000 to U+001F, not DEL, C1 or U+2028
    if quoted.isprintable():
        return quoted
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in quoted)


def text_line(entry: dict[str, object]) -> str:
    """`HH:MM:SS.mmm LEVEL logger: message key=value ...`, the time of day in UTC."""
    head = f"{str(entry['time'])[11:23]} {entry['level']:<7} {entry['logger']}: {entry['message']}"
    fields = " ".join(f"{k}={_value(v)}" for k, v in entry.items() if k not in _HEAD)
    line = f"{head} {fields}" if fields else head
    return f"{line}\n{entry['exception']}" if "exception" in entry else line


# The request a line is logged for: its id and, when traced and sampled, its trace id. Set by
# registro.middleware.RequestTelemetryMiddleware for the request's task (a context variable, so
# concurrent requests on one event loop each see their own).
request_ids: contextvars.ContextVar[tuple[str, str | None] | None] = contextvars.ContextVar(
    "request_ids", default=None
)


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
        ids = request_ids.get()
        if ids is not None:
            entry["request_id"], entry["trace_id"] = ids
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return entry


class TextFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return text_line(self.entry(record))


class LineWriter:
    """A bounded buffer of encoded lines, and the one thread that writes them to a file descriptor.

    The event loop only appends to a deque: an append takes no lock that the caller could already
    hold (a line may be logged from a signal handler that interrupted another append). The thread
    looks for lines every WAKE_SECONDS rather than being woken for each one: each wake-up takes
    the GIL from the event loop and hands it back, and the loop pays for that in CPU. Woken per
    line, that cost a worker about a sixth of its throughput; woken every 20 ms, a POST still
    paid about a tenth of its CPU more than at WAKE_SECONDS (each measured under `make bench`'s
    load). The thread uses os.write, not sys.stdout: a thread stuck in a write must not hold the
    lock that the interpreter takes to flush sys.stdout at exit.
    """

    def __init__(self, fd: int, capacity: int = QUEUE_LINES) -> None:
        self.fd = fd
        self.capacity = capacity
        self.lines: deque[bytes | threading.Event] = deque()
        self.dropped = 0  # published by telemetry.metrics.sample()
        self._wake = threading.Event()
        thread = threading.Thread(target=self._run, name="registro-log-writer", daemon=True)
        thread.start()

    def offer(self, line: bytes) -> None:
        if len(self.lines) >= self.capacity:
            self.dropped += 1
        else:
            self.lines.append(line)

    def flush(self, timeout: float = STOP_SECONDS) -> bool:
        """Wait until what was offered so far is written, or `timeout` (stdout not read)."""
        written = threading.Event()
        self.lines.append(written)
        self._wake.set()
        return written.wait(timeout)

    def _run(self) -> None:
        while True:
            self._wake.wait(WAKE_SECONDS)
            self._wake.clear()
            while self.lines:
                batch = [self.lines.popleft() for _ in range(min(BATCH_LINES, len(self.lines)))]
                data = b"".join(item for item in batch if isinstance(item, bytes))
                try:
                    while data:
                        data = data[os.write(self.fd, data) :]
                except OSError:
                    pass  # stdout closed: nothing to write to, and nobody to tell
                for item in batch:
                    if isinstance(item, threading.Event):
                        item.set()


class QueueingHandler(logging.Handler):
    """Formats in the caller and offers the line to the writer: never waits for stdout."""

    def __init__(self, writer: LineWriter) -> None:
        super().__init__()
        self.writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.writer.offer(self.format(record).encode() + b"\n")
        except Exception:
            self.handleError(record)


class DirectLog:
    """A line that goes with every request (the access line) or every write (the audit line), in
    the same shape as every other log line.

    Offered straight to the writer rather than through `logging`: it is on every request, and the
    logging machinery (records, caller lookup, handler locks) costs more than the line itself.
    """

    def __init__(self, logger: str, message: str) -> None:
        self.logger = logger
        self.message = message
        self.enabled = False
        self.text = False
        self.writer: LineWriter | None = None

    def write(self, fields: dict[str, object]) -> None:
        if not self.enabled or self.writer is None:
            return
        entry = {
            "time": _time(time.time()),
            "level": "INFO",
            "logger": self.logger,
            "message": self.message,
            **fields,
        }
        line = text_line(entry).encode() if self.text else orjson.dumps(entry)
        self.writer.offer(line + b"\n")


access_log = DirectLog("registro.access", "request")
audit_log = DirectLog("registro.audit", "audit")
_writer: LineWriter | None = None


def dropped_lines() -> int:
    return _writer.dropped if _writer is not None else 0


def flush(timeout: float = STOP_SECONDS) -> bool:
    """Wait until the lines logged so far are on stdout (False if it did not take them)."""
    return _writer.flush(timeout) if _writer is not None else True


def configure_logging(
    level: str, queue_lines: int = QUEUE_LINES, *, log_format: str = "json"
) -> None:
    """Route every log line through one writer thread on stdout (one per process)."""
    global _writer
    text = log_format == "text"
    # The formatters read none of what a record would otherwise look up for each line: its
    # caller's file and line, its thread, process and process name (the logging HOWTO,
    # "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    if _writer is None:
        sys.stdout.flush()
        _writer = LineWriter(STDOUT, queue_lines)
        atexit.register(_writer.flush)
    handler = QueueingHandler(_writer)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # access_log writes the one line per request; uvicorn's own would be a second.
    logging.getLogger("uvicorn.access").disabled = True
    for direct in (access_log, audit_log):
        direct.writer = _writer
        direct.enabled = logging.getLogger(direct.logger).getEffectiveLevel() <= logging.INFO
        direct.text = text
