"""The client address recorded in logs and the audit: an IP address in canonical form, or None."""

from __future__ import annotations

import pytest

from registro.telemetry.requests import client_address


@pytest.mark.parametrize(
    ("host", "recorded"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("x" * 150, None),
        ("203.0.113.7:8080", None),
        ("fe80::1%eth0", None),
        ("", None),
        ("unknown", None),
        (None, None),
    ],
)
def test_only_an_address_is_recorded(host: str | None, recorded: str | None) -> None:
    scope = {"type": "http", "client": (host, 0) if host is not None else None}
    assert client_address(scope) == recorded
