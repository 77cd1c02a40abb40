"""Every error is JSON with a `message`; nothing a client sends produces a 5xx."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from registro.api.inputs import InvalidInput
from registro.api.responses import JSON, error
from registro.api.schemas import Invalid, Problem
from registro.store import DatabaseUnavailable

logger = logging.getLogger("registro.errors")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, exc.headers)


async def invalid_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    first = exc.errors[0]
    body = Invalid(
        message=f"Invalid request: {first['loc']}: {first['msg']}",
        errors=[Problem(**problem) for problem in exc.errors],
    )
    return Response(body.model_dump_json(), 422, media_type=JSON)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("database unavailable", extra={"fields": {"error": str(exc)}})
    return error(503, "Database unavailable", {"Retry-After": "1"})


async def unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", extra={"fields": {"path": request.url.path}})
    return error(500, "Internal server error")


HANDLERS = {
    HTTPException: http_error,
    InvalidInput: invalid_input,
    DatabaseUnavailable: database_unavailable,
    Exception: unexpected,
}
