"""Every error is JSON with a `message`; nothing a client sends produces a 5xx."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from registro.api.inputs import InvalidInput
from registro.error_responses import error, invalid
from registro.store import DatabaseBusy, DatabaseUnavailable

logger = logging.getLogger("registro.errors")


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, exc.headers)


async def invalid_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    first = exc.errors[0]
    return invalid(f"Invalid request: {first['loc']}: {first['msg']}", exc.errors)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    busy = isinstance(exc, DatabaseBusy)
    logger.warning(
        "database busy" if busy else "database unavailable", extra={"fields": {"error": str(exc)}}
    )
    message = "Database busy, try again" if busy else "Database unavailable"
    return error(503, message, {"Retry-After": "1"})


HANDLERS = {
    HTTPException: http_error,
    InvalidInput: invalid_input,
    DatabaseUnavailable: database_unavailable,
}  # anything else: registro.middleware.FailsafeMiddleware
