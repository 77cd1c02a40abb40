"""The HTTP layer: every middleware a request passes, in the order it passes them.

A request reaches this module once registro.http (uvicorn's protocol, bounded against slow and
oversized clients) has read its head. From there, outermost first:

1. tracing, only when OTEL_EXPORTER_OTLP_ENDPOINT is set (registro.telemetry.tracing, imported
   then: OpenTelemetry costs a worker's start otherwise), which leaves a sampled request's trace
   id in its state;
2. RequestTelemetryMiddleware: the request's id, its access log line, its metrics, and both ids
   on every log line written while it runs;
3. DrainMiddleware: Connection: close while draining, a JSON 503 at the shutdown deadline;
4. RequestLimitsMiddleware: 413 for a body over REGISTRO_MAX_BODY_BYTES, 415 for one not JSON;
5. FaultInjectionMiddleware, only when REGISTRO_FAULT_* is set (never in prod);
6. the service (registro.app.Service): ErrorsMiddleware, which answers every exception in JSON
   (registro.api.errors says how; anything else is a bug's 500, logged once), around
   Starlette's router; the route's operation is registro.api.operation's wrapper around a
   handler in registro.api.

`wrap` builds 1 to 5 around the service, which builds 6. Each layer is plain ASGI (it sits on
every request, and the benchmark prices every layer), and none imports from `api`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registro.error_responses import error
from registro.lifecycle import Lifecycle
from registro.settings import Settings
from registro.telemetry import metrics
from registro.telemetry.logs import request_ids
from registro.telemetry.requests import (
    ANSWERED_BY_SERVER,
    CLIENT_CLOSED_REQUEST,
    CLIENT_DISCONNECTED,
    REQUEST_ID_HEADER,
    TRACE_ID,
    UNMATCHED,
    client_address,
    new_request_id,
    record,
    safe_caller_request_id,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

Layer = Callable[[ASGIApp], ASGIApp]


def wrap(
    app: ASGIApp, settings: Settings, lifecycle: Lifecycle
) -> tuple[ASGIApp, TracerProvider | None]:
    """`app` inside the layers `settings` ask for, and the tracer provider when traced."""
    for layer in reversed(layers(settings, lifecycle)):
        app = layer(app)
    if not settings.otel_exporter_otlp_endpoint:
        return app, None
    from registro.telemetry.tracing import traced

    return traced(app, settings)


def layers(settings: Settings, lifecycle: Lifecycle) -> list[Layer]:
    """The layers inside tracing, outermost first: the order a request passes them."""
    stack: list[Layer] = [
        RequestTelemetryMiddleware,
        partial(DrainMiddleware, lifecycle=lifecycle),
        partial(RequestLimitsMiddleware, max_body_bytes=settings.max_body_bytes),
    ]
    if settings.faults_enabled:
        stack.append(
            partial(
                FaultInjectionMiddleware,
                error_rate=settings.fault_error_rate,
                latency_ms=settings.fault_latency_ms,
            )
        )
    return stack


class RequestTelemetryMiddleware:
    """The request's id (the service's own, and the caller's if plain), its log line and
    its metrics. One layer for all three: it sits on every request (docs/benchmarks.md)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        rid = new_request_id()
        caller_rid = safe_caller_request_id(scope["headers"])
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        state["caller_request_id"] = caller_rid
        trace_id = state.get(TRACE_ID)  # set by tracing, outside this layer, when sampled
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[Any] = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER, rid.encode()))
                message["headers"] = headers
            await send(message)

        metrics.in_flight += 1
        # Every log line written while this request runs names it (registro.telemetry.logs).
        ids = request_ids.set((rid, trace_id))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_ids.reset(ids)
            metrics.in_flight -= 1
            if scope.get(CLIENT_DISCONNECTED):
                status = CLIENT_CLOSED_REQUEST  # what the client got: nothing
            if not scope.get(ANSWERED_BY_SERVER):
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
                seconds = perf_counter() - started
                client = client_address(scope)
                record(
                    scope["method"],
                    scope["path"],
                    route,
                    status,
                    seconds,
                    rid,
                    caller_rid,
                    client,
                    trace_id,
                )


drain_log = logging.getLogger("registro.lifecycle")


class DrainMiddleware:
    """While draining, close keep-alive connections after each response; at the shutdown
    deadline, answer a cancelled request with a JSON 503 (safe to retry elsewhere)."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if not self.lifecycle.draining or scope["type"] != "http":
                await self.app(scope, receive, send)
                return

            async def send_closing(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers: list[Any] = list(message.get("headers", []))
                    headers.append((b"connection", b"close"))
                    message["headers"] = headers
                await send(message)

            await self.app(scope, receive, send_closing)
        except asyncio.CancelledError:
            if scope["type"] != "http":
                raise
            fields = {"method": scope["method"], "path": scope["path"]}
            drain_log.warning("request cut at the shutdown deadline", extra={"fields": fields})
            reply = error(503, "Server shutting down, try again", {"Retry-After": "1"})
            with contextlib.suppress(Exception):  # a response already started: nothing to add
                await reply(scope, receive, send)


METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
METHODS_WITHOUT_BODY = frozenset({"GET", "HEAD", "DELETE"})
UNEXPECTED_BODY = "registro.unexpected_body"


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
            return True
    return False


def _is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or media_type.endswith(b"+json")


class RequestLimitsMiddleware:
    """A body of at most `max_body_bytes` of JSON, checked before the application reads any.

    413 for size (declared or streamed), 415 for a content type that is not JSON. A body on a
    method that takes none (GET, HEAD, DELETE: RFC 9110 gives it no meaning) is bounded by size
    alone and marked (UNEXPECTED_BODY): the operation then refuses it with a 400 before reading
    it (registro.api.operation), after routing, so that a method the path does not have is still
    a 405. Any other method's body is bounded by size alone."""

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

        if not chunked:
            # The body is the declared length, checked above: the server reads no more for it
            # (what follows on the connection is the next request).
            await self.app(scope, receive, send)
            return

        # A chunked body is counted as it arrives. Past the limit the client gets 413 at once
        # and the application sees a disconnect, whose reply is dropped.
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


FAULTY_PREFIXES = ("/data", "/audit")


class FaultInjectionMiddleware:
    """Errors and latency on the API routes for canary drills. Settings refuse REGISTRO_FAULT_*
    when REGISTRO_ENV=prod, and the layer is only built when one is set. Health, metrics and docs
    are left alone so the instance stays observable while it misbehaves."""

    def __init__(self, app: ASGIApp, error_rate: float, latency_ms: int) -> None:
        self.app = app
        self.error_rate = error_rate
        self.latency = latency_ms / 1000

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(FAULTY_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self.latency:
            await asyncio.sleep(self.latency)
        if random.random() < self.error_rate:
            await error(500, "Injected fault")(scope, receive, send)
            return
        await self.app(scope, receive, send)


errors_log = logging.getLogger("registro.errors")
# What an exception the application raised is answered with, by the exception's class (or the
# nearest base class that has an answer): registro.api.errors.ANSWERS.
Answers = Mapping[type[Exception], Callable[[Exception], Response]]


class ErrorsMiddleware:
    """The innermost layer, around the router: every exception becomes a JSON answer.

    One the service expects (a 404, a 422 of invalid input, the database down) gets its answer
    from `answers`; any other is a bug: a JSON 500, logged once. When the response has already
    begun there is nothing left to answer with, and the answer is dropped. Starlette's own
    exception layers would also wrap every request's send, build a Request for it, and log a bug
    twice (its error layer re-raises for uvicorn to log again, in plain text). A request cut at
    the shutdown deadline is DrainMiddleware's (a JSON 503)."""

    def __init__(self, app: ASGIApp, answers: Answers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            reply = self._answer(exc)
            if reply is None:
                fields = {"method": scope["method"], "path": scope["path"]}
                errors_log.exception("unhandled error", extra={"fields": fields})
                reply = error(500, "Internal server error")
            with contextlib.suppress(Exception):  # a response already started: nothing to add
                await reply(scope, receive, send)

    def _answer(self, exc: Exception) -> Response | None:
        for kind in type(exc).__mro__:
            answer = self.answers.get(kind)
            if answer is not None:
                return answer(exc)
        return None
