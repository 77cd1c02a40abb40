"""Log lines are single JSON objects (or, for a person, text lines) carrying only the fields a
caller passes explicitly."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from registro.settings import load_settings
from registro.telemetry.logs import (
    DirectLog,
    JsonFormatter,
    LineWriter,
    TextFormatter,
    _time,
    text_line,
)


def test_a_record_becomes_one_json_line_with_its_fields() -> None:
    record = logging.LogRecord(
        "registro.access", logging.INFO, __file__, 1, "request\nnext", None, None
    )
    record.fields = {"status": 200, "route": "/data/{id}"}
    record.password = "hunter2"  # noqa: S105 (a fake secret that must stay out of the line)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "request\nnext"
    assert entry["status"] == 200 and entry["route"] == "/data/{id}"
    assert entry["level"] == "INFO" and entry["logger"] == "registro.access"
    assert "hunter2" not in line


@pytest.mark.parametrize(
    "timestamp",
    [0.0, 1.999, 86399.9995, 951782400.5, 1780000000.0004, 1796515199.999999, 4102444800.25],
)
def test_a_line_time_is_the_instant_in_utc_truncated_to_the_millisecond(timestamp: float) -> None:
    """The date and time of day are cached per second: each call must still name its own second
    (the timestamps go back and forth between days, leap day included) and its millisecond."""
    text = _time(timestamp)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", text)
    parsed = datetime.fromisoformat(text)
    assert parsed.utcoffset() == timedelta(0)
    assert 0 <= timestamp - parsed.timestamp() < 0.001 + 1e-6
    assert text[:19] == datetime.fromtimestamp(int(timestamp), UTC).isoformat()[:19]


def test_text_lines_carry_the_same_fields_for_a_person() -> None:
    record = logging.LogRecord("registro.audit", logging.INFO, __file__, 1, "change", None, None)
    record.fields = {"action": "create", "name": "two words"}
    record.password = "hunter2"  # noqa: S105 (a fake secret that must stay out of the line)
    line = TextFormatter().format(record)
    assert re.fullmatch(
        r'\d\d:\d\d:\d\d\.\d{3} INFO    registro\.audit: change action=create name="two words"',
        line,
    )
    read_end, write_end = os.pipe()
    try:
        log = DirectLog("registro.access", "request")
        log.enabled = log.text = True
        log.writer = LineWriter(write_end)
        log.write({"method": "GET", "status": 200})
        assert log.writer.flush(timeout=5)
        out = os.read(read_end, 65536).decode()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert out.endswith("registro.access: request method=GET status=200\n")


@pytest.mark.parametrize(
    "path",
    ["/data/\x1b[2J\x1b[31mred", "/data/\x07bell", "/\x9b31m", "/a\x7fb", "/a\u2028b", "/\x00"],
)
def test_control_characters_from_a_request_are_escaped_in_text_lines(path: str) -> None:
    """uvicorn decodes %1b in a path to ESC: raw, it would drive the terminal of whoever reads
    the dev log (clear the screen, recolour or fake lines). Quoted as JSON strings are, with
    every character that is not printable escaped."""
    line = text_line(
        {
            "time": "2026-12-06T00:00:00.000",
            "level": "INFO",
            "logger": "registro.access",
            "message": "request",
            "path": path,
            "name": "café",
        }
    )
    assert line.isprintable(), repr(line)
    quoted = line.partition(" path=")[2].partition(" name=")[0]
    assert json.loads(quoted) == path
    assert line.endswith(" name=café")


@pytest.mark.parametrize(
    ("env", "variable", "expected"),
    [("dev", None, "text"), ("qa", None, "json"), ("prod", None, "json"), ("dev", "json", "json")],
)
def test_text_logs_are_the_default_in_dev_only(
    env: str, variable: str | None, expected: str
) -> None:
    settings = load_settings(env=env, database_url="sqlite:///x.db", log_format=variable)
    assert settings.log_format_mode == expected


def test_a_stdout_nobody_reads_drops_and_counts_lines_without_waiting() -> None:
    read_end, write_end = os.pipe()  # never read
    try:
        os.set_blocking(write_end, False)
        with contextlib.suppress(BlockingIOError):
            while True:  # fill the pipe's buffer, as a stalled reader would leave it
                os.write(write_end, b"." * 4096)
        os.set_blocking(write_end, True)
        writer = LineWriter(write_end, capacity=10)
        started = time.monotonic()
        for _ in range(1000):
            writer.offer(b"line\n")
        assert time.monotonic() - started < 0.5
        assert writer.dropped >= 1000 - 10 - 256  # the queue, and a batch in the writer's hands
        assert not writer.flush(timeout=0.1)
    finally:
        os.close(read_end)
        os.close(write_end)
