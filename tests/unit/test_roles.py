"""The app role's password is sent as a SCRAM verifier (its login is tested on PostgreSQL)."""

from __future__ import annotations

import base64
import re

import pytest

from registro.store.roles import SCRAM_ITERATIONS, RoleRefused, scram_verifier

VERIFIER = re.compile(
    r"SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)"
)


def test_the_verifier_has_postgres_format_and_a_fresh_salt() -> None:
    first, second = scram_verifier("secret"), scram_verifier("secret")
    match = VERIFIER.fullmatch(first)
    assert match, first
    assert int(match[1]) == SCRAM_ITERATIONS
    assert [len(base64.b64decode(match[i])) for i in (2, 3, 4)] == [16, 32, 32]
    assert "secret" not in first and first != second


def test_a_password_postgres_would_saslprep_differently_is_refused() -> None:
    with pytest.raises(RoleRefused, match="ASCII"):
        scram_verifier("pässword")
