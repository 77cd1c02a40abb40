"""Every error is JSON with a `message`; nothing a client sends produces a 5xx."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from registro.api import responses
from registro.store import DatabaseUnavailable

logger = logging.getLogger("registro.errors")


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _allowed_methods(request: Request) -> str:
    """Every method of every route at this path (the router names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return responses.json({"message": exc.detail}, exc.status_code, headers)


async def invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [{"loc": _location(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    first = details[0] if details else {"loc": "request", "msg": "invalid"}
    message = f"Invalid request: {first['loc']}: {first['msg']}"
    return responses.json({"message": message, "errors": details}, 422)


async def database_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("database unavailable", extra={"fields": {"error": str(exc)}})
    return responses.json({"message": "Database unavailable"}, 503, {"Retry-After": "1"})


async def unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error", extra={"fields": {"path": request.url.path}})
    return responses.json({"message": "Internal server error"}, 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(DatabaseUnavailable, database_unavailable)
    app.add_exception_handler(Exception, unexpected)
