"""JSON responses built with orjson, and the error responses each route documents."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from registro.api.schemas import Message

DESCRIPTIONS = {
    400: "The body could not be read as UTF-8 JSON",
    401: "Missing or invalid API key",
    403: "The API key lacks the scope",
    404: "No such record",
    409: "The name is taken",
    413: "Request body too large",
    415: "Content-Type is not application/json",
    422: "Invalid input",
    503: "Database unavailable",
}


def json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status with the JSON error body every error has."""
    return {s: {"model": Message, "description": DESCRIPTIONS[s]} for s in (*statuses, 503)}
