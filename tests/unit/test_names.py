"""What a record's name may be: a string, trimmed, 1-100 characters, no control characters."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from registro.api.schemas import NAME_PATTERN, NameIn
from registro.store.schema import NAME_MAX_LENGTH


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("alpha", "alpha"),
        ("  padded\u2003", "padded"),
        ("x" * 100, "x" * 100),
        ("ünïcödé ✓", "ünïcödé ✓"),
        ("a b", "a b"),
        ("日本", "日本"),
        ("emoji \U0001f600", "emoji \U0001f600"),
    ],
)
def test_valid_names_are_trimmed(raw: str, stored: str) -> None:
    assert NameIn(name=raw).name == stored
    assert re.fullmatch(NAME_PATTERN, raw), "the documented pattern must accept it too"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "x" * 101,
        "a\x00b",
        "a\nb",
        "\x7f",
        "a\x85",
        "\ud800",
        "\ufeff",
    ],
)
def test_invalid_names_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError):
        NameIn(name=raw)
    # The schema states the length apart from the pattern, and cannot state lone surrogates.
    if len(raw) <= NAME_MAX_LENGTH and raw != "\ud800":
        assert not re.fullmatch(NAME_PATTERN, raw), "the documented pattern must refuse it too"


@pytest.mark.parametrize("raw", [42, None, ["a"], {"a": 1}, True])
def test_names_must_be_strings(raw: object) -> None:
    with pytest.raises(ValidationError):
        NameIn.model_validate({"name": raw})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        NameIn.model_validate({"name": "a", "extra": 1})
