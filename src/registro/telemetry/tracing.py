"""OpenTelemetry traces, exported over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT is set.

The exporter and the sampler read the other standard OTEL_* variables themselves (headers,
timeouts, batching; OTEL_TRACES_SAMPLER and its ratio, set once in deploy/k8s/base/config.env).
Spans leave through a BatchSpanProcessor: a bounded queue and one thread, so a receiver that is
slow or down costs a request nothing (a full queue drops spans; tests/e2e/test_10_traces.py).

A server span per request (ServerSpanMiddleware), named after the route template; each database
statement is a client span under it (`instrument_databases`).

Trace ids embed their start time in the first 32 bits: AWS X-Ray refuses a trace id whose
leading 8 hex digits are not a Unix time within its last 30 days, and the CloudWatch agent's
X-Ray exporter drops such spans ("invalid xray traceid", awsxrayexporter
internal/translator/segment.go convertToAmazonTraceID; X-Ray Developer Guide, "Sending trace
data to X-Ray", trace id format). Within a process they stay unique by their 96 random bits.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registro import __version__
from registro.settings import Settings
from registro.telemetry.requests import TRACE_ID


def trace_id_hex(span: trace.Span) -> str | None:
    """The span's trace id as 32 hex digits (W3C form), if the span is sampled."""
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.trace_flags.sampled else None


_PROPAGATOR = TraceContextTextMapPropagator()
_CONTEXT_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}


class ServerSpanMiddleware:
    """A server span per request, continuing the caller's W3C traceparent when it sent one.

    In place of opentelemetry-instrumentation-asgi's middleware, which gathers a dozen attributes
    and records metrics for every request, sampled or not: with it, a request at the production
    ratio cost the service 1.8 times the CPU of an untraced one (make bench-tracing measures
    this layer: docs/benchmarks-tracing.md). Here an unsampled request costs a sampling decision
    and a non-recording span, never made current; a sampled one gets the attributes
    X-Ray reads (the awsxray exporter's HTTP block: http.method, http.target, http.status_code;
    a 5xx is a fault). The span is named after the route template (`GET /data/{id}`), known once
    routing has run, so on the way out; its trace id is left in the request's state for the log
    lines and the audit row."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {
            _CONTEXT_HEADERS[name]: value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _CONTEXT_HEADERS
        }
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        method = scope["method"]
        span = self.tracer.start_span(method, context=parent, kind=trace.SpanKind.SERVER)
        state = scope.setdefault("state", {})
        if not span.is_recording():
            # Not made current: nothing under an unsampled request would record (the database
            # spans look for a recording one), and making it current costs a context switch.
            state[TRACE_ID] = None
            await self.app(scope, receive, send)
            return
        state[TRACE_ID] = trace_id_hex(span)
        with trace.use_span(span, end_on_exit=True, record_exception=True):
            span.set_attributes({"http.method": method, "http.target": scope["path"]})

            async def send_recording(message: Message) -> None:
                if message["type"] == "http.response.start":
                    route = getattr(scope.get("route"), "path", None)
                    if route:
                        span.update_name(f"{method} {route}")
                        span.set_attribute("http.route", route)
                    status = message["status"]
                    span.set_attribute("http.status_code", status)
                    if status >= 500:
                        span.set_status(trace.StatusCode.ERROR)
                await send(message)

            await self.app(scope, receive, send_recording)


class XRayIdGenerator(IdGenerator):
    """Trace ids whose first 4 bytes are the Unix time in seconds, the rest random."""

    def generate_span_id(self) -> int:
        return random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return (int(time.time()) << 96) | random.getrandbits(96)


def resource(service_name: str, environment: str, commit: str, pod: str | None) -> Resource:
    """What every span says about its source (the pod's name comes from the downward API,
    deploy/k8s/base/rollout.yaml); Resource.create merges in OTEL_RESOURCE_ATTRIBUTES too."""
    attributes: dict[str, str | int] = {
        "service.name": service_name,
        "service.version": __version__,
        "vcs.ref.head.revision": commit,
        "deployment.environment.name": environment,
        "process.pid": os.getpid(),
    }
    if pod:
        attributes["k8s.pod.name"] = pod
    return Resource.create(attributes)


def _statement_name(statement: str) -> str:
    """The span's name: the statement's first keyword (SELECT, WITH, INSERT, BEGIN...)."""
    words = statement.split(None, 1)
    return words[0].upper() if words else "statement"


# The tracer of the provider last built in this process (one per worker process; tests build
# several): the patched methods look it up at each call.
_statements: list[trace.Tracer] = []


def _traced_method(
    method: Callable[..., Awaitable[Any]], system: str
) -> Callable[..., Awaitable[Any]]:
    async def statement(self: object, query: str, *args: Any, **kwargs: Any) -> Any:
        if not _statements or not trace.get_current_span().is_recording():
            return await method(self, query, *args, **kwargs)  # unsampled: no span to add
        attributes = {"db.system.name": system, "db.query.text": query}
        with _statements[-1].start_as_current_span(
            _statement_name(query), kind=trace.SpanKind.CLIENT, attributes=attributes
        ):
            return await method(self, query, *args, **kwargs)

    statement._registro_statement = True  # type: ignore[attr-defined]
    return statement


# The methods the stores run statements through (registro.store.postgres, .sqlite); asyncpg's
# transaction() sends BEGIN, COMMIT and savepoints through Connection.execute too.
_STATEMENT_METHODS = {
    ("asyncpg", "Connection", "postgresql"): ("execute", "fetch", "fetchval", "fetchrow"),
    ("aiosqlite", "Connection", "sqlite"): ("execute",),
}


def instrument_databases(tracer: trace.Tracer) -> None:
    """Each statement a child span of the request's span, for both drivers, with the statement
    text (its placeholders, never its values). Done here rather than with the drivers'
    instrumentations: aiosqlite runs statements on its own thread, which does not carry the
    request's context (so opentelemetry-instrumentation-sqlite3 would start orphan traces), and
    one wrapper covers both. Once per process: the methods are patched on the classes."""
    import importlib

    _statements[:] = [tracer]
    for (module_name, class_name, system), methods in _STATEMENT_METHODS.items():
        cls = getattr(importlib.import_module(module_name), class_name)
        for name in methods:
            method = getattr(cls, name)
            if not hasattr(method, "_registro_statement"):  # aiosqlite's has a __wrapped__
                setattr(cls, name, _traced_method(method, system))


# At a worker's exit, how long the spans still queued may take to leave. The SDK's own shutdown
# waits up to 30 s, retrying a receiver that is down batch after batch: a worker would outlive
# its grace period (compose's stop_grace_period, the pod's terminationGracePeriodSeconds).
FLUSH_SECONDS = 2.0


def stop(shutdown: Callable[[], None], seconds: float = FLUSH_SECONDS) -> None:
    """Shut the tracer provider down (`shutdown`), waiting at most `seconds` for its last spans
    to be exported; past that they are lost with the process (the thread is a daemon)."""
    flushing = threading.Thread(target=shutdown, name="registro-trace-flush", daemon=True)
    flushing.start()
    flushing.join(seconds)


def traced(app: ASGIApp, settings: Settings) -> tuple[ASGIApp, TracerProvider]:
    """`app` traced, when settings.otel_exporter_otlp_endpoint is set (registro.middleware)."""
    assert settings.otel_exporter_otlp_endpoint
    endpoint = settings.otel_exporter_otlp_endpoint
    provider = TracerProvider(
        resource=resource(
            settings.otel_service_name, settings.env, settings.git_commit, settings.pod_name
        ),
        id_generator=XRayIdGenerator(),
    )
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    instrument_databases(provider.get_tracer("registro.store"))
    wrapped = ServerSpanMiddleware(app, provider.get_tracer("registro.http"))
    return wrapped, provider
