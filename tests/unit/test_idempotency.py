"""The Idempotency-Key header: its format, what makes two requests one, and its documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

import registro
from registro.api import idempotency_header
from registro.api.inputs import InvalidInput
from registro.api.openapi import document
from registro.app import OPERATIONS
from tests.support import idempotent


def test_the_drills_writer_names_the_services_headers() -> None:
    assert (idempotent.HEADER, idempotent.REPLAYED) == (
        idempotency_header.HEADER,
        idempotency_header.REPLAYED,
    )


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("4f8e7c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b", True),
        ("~" * 255, True),
        ("~" * 256, False),
        ("", False),
        ("a b", False),
        ("caf\u00e9", False),
        ("a\x7f", False),
    ],
)
def test_a_key_is_1_to_255_printable_ascii_characters_without_spaces(key: str, valid: bool) -> None:
    assert bool(idempotency_header.KEY.fullmatch(key)) is valid


def test_method_path_and_body_each_make_another_request() -> None:
    same = idempotency_header.fingerprint("POST", "/data", b'{"name":"a"}')
    assert same == idempotency_header.fingerprint("POST", "/data", b'{"name":"a"}')
    others = {
        idempotency_header.fingerprint("PUT", "/data", b'{"name":"a"}'),
        idempotency_header.fingerprint("POST", "/data/1", b'{"name":"a"}'),
        idempotency_header.fingerprint("POST", "/data", b'{"name":"b"}'),
        # Lengths are hashed too: moving a byte from the path to the body is another request.
        idempotency_header.fingerprint("POST", "/dat", b'a{"name":"a"}'),
    }
    assert same not in others and len(others) == 4


def test_the_header_is_documented_on_exactly_the_writes() -> None:
    paths = document(OPERATIONS, "writes", "registro", "0", "")["paths"]
    keyed = {
        (method.upper(), path)
        for path, methods in paths.items()
        for method, operation in methods.items()
        if any(p["name"] == idempotency_header.HEADER for p in operation.get("parameters", []))
    }
    assert keyed == {("POST", "/data"), ("PUT", "/data/{id}"), ("DELETE", "/data/{id}")}
    header = next(p for p in paths["/data"]["post"]["parameters"] if p["in"] == "header")
    assert (header["in"], header["required"], header["schema"]["maxLength"]) == (
        "header",
        False,
        255,
    )
    assert idempotency_header.REPLAYED in paths["/data"]["post"]["responses"]["200"]["headers"]


def test_a_malformed_key_names_the_header() -> None:
    from starlette.requests import Request

    request = Request({"type": "http", "headers": [(b"idempotency-key", b"a b")]})
    with pytest.raises(InvalidInput) as raised:
        idempotency_header.key(request)
    assert raised.value.errors[0]["loc"] == "header.Idempotency-Key"


def test_the_key_is_the_first_such_header_and_none_without_one() -> None:
    """Read from the scope's header list, whose names the server hands over in lower case (the
    ASGI HTTP spec), the first of a repeated header winning as with Starlette's Headers.get."""
    from starlette.requests import Request

    def request(*headers: tuple[bytes, bytes]) -> Request:
        return Request({"type": "http", "headers": [(b"host", b"x"), *headers]})

    assert idempotency_header.key(request()) is None
    first, second = (b"idempotency-key", b"first"), (b"idempotency-key", b"second")
    assert idempotency_header.key(request(first, second)) == "first"


def test_no_two_modules_of_the_service_share_a_name() -> None:
    """Two modules named idempotency.py (the header's, the database's) were read for each
    other; a name says which is which."""
    package = Path(registro.__file__).parent
    names = [
        path.name
        for path in package.rglob("*.py")
        if path.name != "__init__.py" and "migrations" not in path.parts
    ]
    assert sorted(names) == sorted(set(names))
