"""Every JSON error the service answers, built here and nowhere else: by the API's exception
handlers, by the middleware, and by the HTTP layer (registro.http), which writes raw HTTP before
any application runs.

One shape, `{"message": ...}` (`Message` in the OpenAPI document); a 422 adds the validation's
`errors` (`Invalid`). Kept outside registro.api so that the middleware need not import the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson
from starlette.responses import Response

JSON = "application/json"
# The statuses the HTTP layer answers itself.
REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def body(message: str) -> bytes:
    return orjson.dumps({"message": message})


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An error reply. Also an ASGI app: middleware answers with it."""
    return Response(body(message), status, headers, media_type=JSON)


def invalid(message: str, errors: Sequence[Mapping[str, str]]) -> Response:
    """The 422 of input that failed validation: each problem's `loc` and `msg` besides."""
    return Response(orjson.dumps({"message": message, "errors": errors}), 422, media_type=JSON)


def raw(status: int, message: str, request_id: str) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for the HTTP layer."""
    content = body(message)
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-type: {JSON}\r\n"
        f"content-length: {len(content)}\r\nconnection: close\r\nx-request-id: {request_id}\r\n"
    )
    if status == 503:
        head += "retry-after: 1\r\n"
    return head.encode() + b"\r\n" + content
