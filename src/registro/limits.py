"""What a request may be: a bounded connection (HttpLimits, enforced by registro.http), and a
body of at most REGISTRO_MAX_BODY_BYTES of JSON.

The body is checked before the application reads anything, so an oversize or foreign body costs
nothing and changes nothing: 413 for size (declared or streamed), 415 for a content type that is
not JSON. A body on a method that takes none (GET, HEAD, DELETE: RFC 9110 gives it no meaning)
is bounded by size alone here and marked (UNEXPECTED_BODY): the operation then refuses it with a
400 before reading it (registro.api.operation), after routing, so that a method the path does
not have is still a 405. Any other method's body is bounded by size alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registro.error_responses import error
from registro.settings import Settings

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "DELETE"})
UNEXPECTED_BODY = "registro.unexpected_body"


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one connection may cost a worker, against slow or oversized clients."""

    max_header_bytes: int = 16_384
    header_timeout: float = 5.0  # seconds for the request line and headers
    body_timeout: float = 10.0  # seconds for the body, once the headers are in
    # Seconds a response may wait, without any of it being taken, for a client that does not
    # read. No setting: a client reading at any pace resets it, so one bound suits every client.
    send_timeout: float = 10.0
    max_connections: int = 1000  # per worker


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=settings.http_max_header_bytes,
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        max_connections=settings.http_max_connections,
    )


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in METHODS_WITHOUT_BODY:
            if not _declares_body(scope["headers"]):
                await self.app(scope, receive, send)
                return
            scope[UNEXPECTED_BODY] = True
        content_type = b""
        declared = b""
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        too_large = f"Request body larger than {self.max_body_bytes} bytes"
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await error(413, too_large)(scope, receive, send)
            return
        has_body = chunked or declared not in (b"", b"0")
        json_only = scope["method"] in METHODS_WITH_BODY
        if json_only and (content_type or has_body) and not _is_json(content_type):
            await error(415, "Content-Type must be application/json")(scope, receive, send)
            return

        # A body streamed without Content-Length is counted as it arrives. Past the limit the
        # client gets 413 at once and the application sees a disconnect, whose reply is dropped.
        received = 0
        rejected = False

        async def receive_limited() -> Message:
            nonlocal received, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes and not rejected:
                    rejected = True
                    await error(413, too_large)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_rejected(message: Message) -> None:
            if not rejected:
                await send(message)

        await self.app(scope, receive_limited, send_unless_rejected)
