"""Log lines are single JSON objects (or, for a person, text lines) carrying only the fields a
caller passes explicitly."""

from __future__ import annotations

import json
import logging
import re

import pytest

from registro.settings import load_settings
from registro.telemetry.logs import AccessLog, JsonFormatter, TextFormatter


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


def test_text_lines_carry_the_same_fields_for_a_person(capsys: pytest.CaptureFixture[str]) -> None:
    record = logging.LogRecord("registro.audit", logging.INFO, __file__, 1, "change", None, None)
    record.fields = {"action": "create", "name": "two words"}
    record.password = "hunter2"  # noqa: S105 (a fake secret that must stay out of the line)
    line = TextFormatter().format(record)
    assert re.fullmatch(
        r'\d\d:\d\d:\d\d\.\d{3} INFO    registro\.audit: change action=create name="two words"',
        line,
    )
    AccessLog(enabled=True, text=True).write({"method": "GET", "status": 200})
    assert capsys.readouterr().out.endswith("registro.access: request method=GET status=200\n")


@pytest.mark.parametrize(
    ("env", "variable", "expected"),
    [("dev", None, "text"), ("qa", None, "json"), ("prod", None, "json"), ("dev", "json", "json")],
)
def test_text_logs_are_the_default_in_dev_only(
    env: str, variable: str | None, expected: str
) -> None:
    settings = load_settings(env=env, database_url="sqlite:///x.db", log_format=variable)
    assert settings.log_format_mode == expected
