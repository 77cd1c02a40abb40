"""One pure ASGI middleware that observes every HTTP request: its id, its log line, its metrics.

Kept as a single layer because it sits on every request (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import re
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registro.telemetry import metrics
from registro.telemetry.logs import access_log

REQUEST_ID_HEADER = b"x-request-id"
# Logged and counted for a client that left before its response was written (nginx's code).
CLIENT_CLOSED_REQUEST = 499
CLIENT_DISCONNECTED = "registro.client_disconnected"  # set by registro.http
# An incoming id is reused only if it is short and plain; anything else could forge log lines.
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def _incoming_request_id(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value if _SAFE_REQUEST_ID.fullmatch(value) else None
    return None


def request_id(scope: Scope) -> str | None:
    rid: str | None = scope.get("state", {}).get("request_id")
    return rid


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        rid = _incoming_request_id(scope["headers"]) or os.urandom(16).hex().encode()
        scope.setdefault("state", {})["request_id"] = rid.decode()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[Any] = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, rid))
                message["headers"] = headers
            await send(message)

        metrics.in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.in_flight -= 1
            if scope.get(CLIENT_DISCONNECTED):
                status = CLIENT_CLOSED_REQUEST  # what the client got: nothing
            seconds = perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            metrics.record_request(method, template, status, seconds)
            client = scope.get("client")
            access_log.write(
                {
                    "method": method,
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "request_id": rid.decode(),
                    "client": client[0] if client else None,
                }
            )
