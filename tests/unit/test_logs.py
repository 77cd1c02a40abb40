"""Log lines are single JSON objects carrying only the fields a caller passes explicitly."""

from __future__ import annotations

import json
import logging

from registro.telemetry.logs import JsonFormatter


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
