"""What a record's name may be, once: the check the service runs and the pattern it documents.

A name is compared and stored in Unicode NFC, so "café" typed precomposed or with a combining
accent is one name. Characters that are invisible or have no meaning of their own are refused
anywhere in it: control (Cc), format (Cf: zero-width spaces, bidirectional overrides, the BOM),
unassigned (Cn), private-use (Co) and lone surrogates (Cs). Surrounding white space is trimmed,
and the length limit applies to what is stored: the trimmed NFC form.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

from registro.store.schema import NAME_MAX_LENGTH

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs"})


def clean_name(value: str) -> str:
    """The name as stored, or ValueError saying what is wrong with it."""
    if value.isascii():  # the usual case, and cheaper: ASCII is NFC, its unprintables are Cc
        refused = not value.isprintable()
    else:
        refused = any(unicodedata.category(c) in REFUSED_CATEGORIES for c in value)
    if refused:
        raise ValueError(
            "name must not contain control, format, unassigned, private-use or surrogate characters"
        )
    value = (value if value.isascii() else unicodedata.normalize("NFC", value)).strip()
    if not value:
        raise ValueError("name must not be blank")
    if len(value) > NAME_MAX_LENGTH:
        raise ValueError(f"name must be at most {NAME_MAX_LENGTH} characters once trimmed")
    return value


def _character_class(ranges: list[tuple[int, int]]) -> str:
    parts = (
        re.escape(chr(first)) + ("" if first == last else "-" + re.escape(chr(last)))
        for first, last in ranges
    )
    return "[" + "".join(parts) + "]"


def _runs(codes: list[int]) -> list[tuple[int, int]]:
    """Ascending code points as (first, last) ranges of consecutive ones."""
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return ranges


@functools.cache
def name_pattern() -> str:
    """The documented form of `clean_name` for /openapi.json, the length limit included (it counts
    the trimmed name). It differs only on names that NFC makes longer or shorter. Lone surrogates
    are in no class: they are not text, and JSON Schema tools cannot take them in a pattern."""
    usable = [
        c
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) not in REFUSED_CATEGORIES
    ]
    space = [c for c in usable if chr(c).isspace()]
    visible = sorted(set(usable) - set(space))
    any_usable, blank, solid = (_character_class(_runs(x)) for x in (usable, space, visible))
    inner = NAME_MAX_LENGTH - 2
    return f"^{blank}*{solid}(?:{any_usable}{{0,{inner}}}{solid})?{blank}*$"
