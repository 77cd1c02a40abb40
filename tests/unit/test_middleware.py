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
