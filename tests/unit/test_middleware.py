"""The HTTP layer as registro.app builds it: every layer, in the order a request passes them."""

from __future__ import annotations

from typing import Any

from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette

from registro.app import create_app
from registro.middleware import (
    DrainMiddleware,
    FailsafeMiddleware,
    FaultInjectionMiddleware,
    RequestLimitsMiddleware,
    RequestTelemetryMiddleware,
)
from registro.settings import load_settings
from registro.telemetry.tracing import RouteSpanNameMiddleware


def chain(app: Any) -> list[Any]:
    """Each layer down to the Starlette application, outermost first."""
    layers = [app]
    while not isinstance(layers[-1], Starlette):
        layers.append(layers[-1].app)
    return layers


def outermost_first(app: Any) -> list[type]:
    """Each layer's type down to the Starlette application, then the middleware it adds."""
    *layers, starlette = chain(app)
    return [*map(type, layers), Starlette, *(m.cls for m in starlette.user_middleware)]


def test_every_request_passes_the_layers_in_this_order() -> None:
    app = create_app(load_settings(max_body_bytes=1024))
    assert outermost_first(app) == [
        RequestTelemetryMiddleware,  # first in, last out: it sees every answer, the 413s included
        DrainMiddleware,
        RequestLimitsMiddleware,
        Starlette,
        FailsafeMiddleware,
    ]
    assert chain(app)[2].max_body_bytes == 1024


def test_faults_sit_innermost_and_tracing_outermost_when_configured() -> None:
    settings = load_settings(
        fault_error_rate=0.5,
        fault_latency_ms=7,
        otel_exporter_otlp_endpoint="http://127.0.0.1:4318",
    )
    app = create_app(settings)
    chain(app)[-1].state.shared.tracer_provider.shutdown()  # its exporter's thread
    assert outermost_first(app) == [
        OpenTelemetryMiddleware,
        RouteSpanNameMiddleware,
        RequestTelemetryMiddleware,
        DrainMiddleware,
        RequestLimitsMiddleware,
        FaultInjectionMiddleware,
        Starlette,
        FailsafeMiddleware,
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
