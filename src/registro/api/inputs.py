"""Reading a request's path, query and body into validated values, or InvalidInput (422)."""

from __future__ import annotations

import json
from typing import Any, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from registro.api.schemas import MAX_ID

Model = TypeVar("Model", bound=BaseModel)
MAX_ID_DIGITS = len(str(MAX_ID))


class InvalidInput(Exception):
    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput([{"loc": loc, "msg": msg}])


def _errors(where: str, exc: ValidationError) -> InvalidInput:
    return InvalidInput(
        [
            {"loc": ".".join((where, *(str(part) for part in e["loc"]))), "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
    )


def header(request: Request, name: bytes) -> str | None:
    """The request's first header `name` (lower case, as the server hands names over), or None.

    Starlette's `request.headers.get` builds a Headers object and answers a missing header by
    raising and catching KeyError; every write looks up two headers, one usually missing."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def record_id(request: Request) -> int:
    raw: str = request.path_params["id"]
    # The length first: int() of a few thousand digits raises (Python's conversion limit).
    if not (len(raw) <= MAX_ID_DIGITS and raw.isascii() and raw.isdigit()) or not (
        1 <= int(raw) <= MAX_ID
    ):
        raise _invalid("path.id", f"must be an integer from 1 to {MAX_ID}")
    return int(raw)


def query(request: Request, model: type[Model]) -> Model:
    params: dict[str, Any] = dict(request.query_params)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise _errors("query", exc) from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different (parsers disagree on which duplicate wins)."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


# One decoder for every body: json.loads with a hook would build a new one per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def parse_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8 (RFC 8259), no duplicate keys, no NaN or Infinity; ValueError
    otherwise."""
    try:
        return _DECODER.decode(raw.decode())
    except RecursionError:  # nested deeper than the parser goes
        raise ValueError("nested too deeply") from None


async def raw_body(request: Request) -> bytes:
    """The body as sent, its size already bounded (registro.middleware.RequestLimitsMiddleware).

    Read from the ASGI channel itself: Starlette's Request.body reads through an async
    generator, and every write pays for it (`make bench-cpu`)."""
    chunks = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":  # gone, or cut off by the body limit's 413
            raise HTTPException(400, "The request body was not received")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def body(raw: bytes, model: type[Model]) -> Model:
    try:
        document = parse_json(raw)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise _invalid("body", f"Invalid JSON: {exc}") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise _errors("body", exc) from None
