""".env.example names every setting the service reads, each with its dev default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from registro.settings import ENVIRONMENT_VARIABLES, Settings, _variable_name, load_settings
from tests.unit.test_reference_docs import effective

EXAMPLE = Path(__file__).parents[2] / ".env.example"
LINE = re.compile(r"# ([A-Z][A-Z0-9_]*)=(.*)")


def example() -> list[tuple[str, str]]:
    return [
        (m[1], m[2]) for line in EXAMPLE.read_text().splitlines() if (m := LINE.fullmatch(line))
    ]


def test_every_setting_once() -> None:
    names = [name for name, _ in example()]
    assert len(names) == len(set(names))
    assert set(names) == ENVIRONMENT_VARIABLES, "add each new setting to .env.example"


def test_each_value_is_the_dev_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommenting any line as it stands changes no setting; "NAME=" lines are unset ones."""
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    defaults = effective(load_settings())
    field = {_variable_name(f): f for f in Settings.model_fields}
    for name, value in example():
        if value == "":
            assert defaults[field[name]] is None, f".env.example: {name} is not unset by default"
            continue
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            assert effective(load_settings()) == defaults, f".env.example: {name}={value}"
