"""The HTTP layer as registro.app builds it: every layer, in the order a request passes them."""

from __future__ import annotations

from typing import Any

from starlette.routing import Router

from registro.app import Service, create_app
from registro.middleware import (
    DrainMiddleware,
    ErrorsMiddleware,
    FaultInjectionMiddleware,
    RequestLimitsMiddleware,
    RequestTelemetryMiddleware,
)
from registro.settings import load_settings
from registro.telemetry.tracing import ServerSpanMiddleware


def chain(app: Any) -> list[Any]:
    """Each layer down to the service, outermost first."""
    layers = [app]
    while not isinstance(layers[-1], Service):
        layers.append(layers[-1].app)
    return layers


def outermost_first(app: Any) -> list[type]:
    """Each layer's type down to the router."""
    *layers, service = chain(app)
    return [*map(type, layers), Service, type(service.app), type(service.app.app)]


def test_every_request_passes_the_layers_in_this_order() -> None:
    app = create_app(load_settings(max_body_bytes=1024))
    assert outermost_first(app) == [
        RequestTelemetryMiddleware,  # first in, last out: it sees every answer, the 413s included
        DrainMiddleware,
        RequestLimitsMiddleware,
        Service,
        ErrorsMiddleware,
        Router,
    ]
    assert chain(app)[2].max_body_bytes == 1024


def test_faults_sit_innermost_and_tracing_outermost_when_configured() -> None:
    settings = load_settings(
        fault_error_rate=0.5,
        fault_latency_ms=7,
        otel_exporter_otlp_endpoint="http://127.0.0.1:4318",
    )
    app = create_app(settings)
    chain(app)[-1].shared.tracer_provider.shutdown()  # its exporter's thread
    assert outermost_first(app) == [
        ServerSpanMiddleware,
        RequestTelemetryMiddleware,
        DrainMiddleware,
        RequestLimitsMiddleware,
        FaultInjectionMiddleware,
        Service,
        ErrorsMiddleware,
        Router,
    ]


async def test_every_line_logged_during_a_request_names_it_and_its_trace() -> None:
    """The request's ids reach every log line written while it runs, through a context
    variable the telemetry layer sets for the request's task and resets after it."""
    import logging

    from registro.telemetry.logs import JsonFormatter
    from registro.telemetry.requests import TRACE_ID

    lines: list[dict[str, Any]] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().entry(record))

    app_log = logging.getLogger("registro.test.app")
    app_log.addHandler(Keep())
    app_log.propagate = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        app_log.warning("inside")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        pass

    layer = RequestTelemetryMiddleware(app)
    trace_id = "0123456789abcdef0123456789abcdef"
    for traced in (trace_id, None):
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/x",
            "headers": [],
            "state": {TRACE_ID: traced},
        }
        await layer(scope, None, send)
        assert lines[-1]["request_id"] == scope["state"]["request_id"]
        assert lines[-1]["trace_id"] == traced
    app_log.warning("outside")
    assert "request_id" not in lines[-1] and "trace_id" not in lines[-1]


async def test_the_server_span_continues_a_callers_trace_and_marks_a_5xx() -> None:
    """W3C trace context (https://www.w3.org/TR/trace-context/): a sampled traceparent is
    continued (ParentBased sampler), an unsampled one is not recorded; a 5xx span has status
    ERROR and http.status_code, which the awsxray exporter turns into a fault (awsxrayexporter
    internal/translator/cause.go makeCause)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import StatusCode

    from registro.telemetry.requests import TRACE_ID

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        pass

    layer = ServerSpanMiddleware(failing, provider.get_tracer("test"))
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    states = []
    for flags in ("01", "00"):
        header = f"00-{trace_id}-{parent}-{flags}".encode()
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/x",
            "headers": [(b"traceparent", header)],
        }
        await layer(scope, None, send)
        states.append(scope["state"][TRACE_ID])
    assert states == [trace_id, None]
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == parent
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes is not None and span.attributes["http.status_code"] == 503
