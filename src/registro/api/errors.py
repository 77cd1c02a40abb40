"""Every error is JSON with a `message`; nothing a client sends produces a 5xx.

The answer to each exception the service expects, for registro.middleware.ErrorsMiddleware;
anything else is a bug, which it answers with a JSON 500.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.responses import Response

from registro.api.inputs import InvalidInput
from registro.error_responses import error, invalid
from registro.store import DatabaseBusy, DatabaseUnavailable

logger = logging.getLogger("registro.errors")


def http_error(exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, exc.detail, exc.headers)


def invalid_input(exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    first = exc.errors[0]
    return invalid(f"Invalid request: {first['loc']}: {first['msg']}", exc.errors)


def database_unavailable(exc: Exception) -> Response:
    busy = isinstance(exc, DatabaseBusy)
    logger.warning(
        "database busy" if busy else "database unavailable", extra={"fields": {"error": str(exc)}}
    )
    message = "Database busy, try again" if busy else "Database unavailable"
    return error(503, message, {"Retry-After": "1"})


ANSWERS = {
    HTTPException: http_error,  # Starlette's router raises it too: 404, and 405 with Allow
    InvalidInput: invalid_input,
    DatabaseUnavailable: database_unavailable,
}
