"""What a record's name may be: a string, NFC, trimmed, 1-100 characters once trimmed, and
nothing invisible or meaningless in it (control, format, unassigned, private-use, surrogate)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from registro.api.names import REFUSED_CATEGORIES, name_pattern
from registro.api.schemas import NameIn
from registro.store.schema import NAME_MAX_LENGTH


@pytest.fixture(scope="module")
def pattern() -> re.Pattern[str]:
    return re.compile(name_pattern())


def accepted(raw: str) -> str | None:
    try:
        return NameIn(name=raw).name
    except ValidationError:
        return None


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("alpha", "alpha"),
        ("  padded\u2003", "padded"),
        ("x" * 100, "x" * 100),
        (" " + "x" * 100 + "\u3000", "x" * 100),  # the limit counts the trimmed name
        ("ünïcödé ✓", "ünïcödé ✓"),
        ("a b", "a b"),
        ("日本", "日本"),
        ("emoji \U0001f600", "emoji \U0001f600"),
        ("cafe\u0301", "caf\u00e9"),  # NFD in, NFC stored
        ("A\u030a", "\u00c5"),
    ],
)
def test_valid_names_are_stored_trimmed_in_nfc(
    raw: str, stored: str, pattern: re.Pattern[str]
) -> None:
    assert NameIn(name=raw).name == stored
    assert pattern.fullmatch(raw), "the documented pattern must accept it too"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "x" * 101,
        " " + "x" * 101 + " ",
        "a\x00b",
        "a\nb",
        "\x7f",
        "a\x85",
        "\ufeff",
        "\u200b",  # zero-width space only (Cf)
        "a\u200db",  # zero-width joiner (Cf)
        "abc\u202edcba",  # right-to-left override (Cf)
        "\u2066x\u2069",  # bidirectional isolates (Cf)
        "a\U000e0001",  # language tag (Cf)
        "\ue000",  # private use (Co)
        "\U000f0000",  # supplementary private use (Co)
        "\u0378",  # unassigned (Cn)
        "\U0003ffff",  # unassigned (Cn)
    ],
)
def test_invalid_names_are_refused(raw: str, pattern: re.Pattern[str]) -> None:
    with pytest.raises(ValidationError):
        NameIn(name=raw)
    assert not pattern.fullmatch(raw), "the documented pattern must refuse it too"


def test_lone_surrogates_are_refused() -> None:
    for raw in ("\ud800", "a\udfffb"):
        with pytest.raises(ValidationError):
            NameIn(name=raw)


def test_the_length_limit_is_the_stored_length() -> None:
    """NFC can make a name longer (U+0958 has no composed form): what is stored must fit."""
    assert len(unicodedata.normalize("NFC", "\u0958" * 60)) == 120
    with pytest.raises(ValidationError):
        NameIn(name="\u0958" * 60)
    assert NameIn(name="e\u0301" * 100).name == "\u00e9" * 100  # 200 code points in, 100 kept


@pytest.mark.parametrize("raw", [42, None, ["a"], {"a": 1}, True])
def test_names_must_be_strings(raw: object) -> None:
    with pytest.raises(ValidationError):
        NameIn.model_validate({"name": raw})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        NameIn.model_validate({"name": "a", "extra": 1})


# Property-based: any text, including what is refused.
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=120)


@given(ANY_TEXT)
@settings(max_examples=500, deadline=None)
def test_the_documented_pattern_says_what_the_service_accepts(raw: str) -> None:
    # Equal wherever NFC keeps the length, which is all a JSON Schema pattern can state.
    if len(unicodedata.normalize("NFC", raw)) == len(raw):
        assert (pattern_match(raw) is not None) == (accepted(raw) is not None), ascii(raw)


def pattern_match(raw: str) -> re.Match[str] | None:
    return re.fullmatch(name_pattern(), raw)


@given(ANY_TEXT)
@settings(max_examples=500, deadline=None)
def test_a_stored_name_is_clean_and_its_own_normal_form(raw: str) -> None:
    stored = accepted(raw)
    if stored is not None:
        assert stored == unicodedata.normalize("NFC", stored) == stored.strip()
        assert 1 <= len(stored) <= NAME_MAX_LENGTH
        assert not any(unicodedata.category(c) in REFUSED_CATEGORIES for c in stored)
        assert accepted(stored) == stored  # storing it again changes nothing


@given(st.text(min_size=1, max_size=30).map(lambda s: unicodedata.normalize("NFD", s)))
@settings(max_examples=300, deadline=None)
def test_names_that_look_the_same_are_the_same_name(raw: str) -> None:
    assert accepted(raw) == accepted(unicodedata.normalize("NFC", raw))
