"""Assembles the service: routes, error handling, and the middleware every request passes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp

from registro import __version__
from registro.api import audit, data, errors, health
from registro.api.access import SECURITY_SCHEMES
from registro.auth import Authenticator
from registro.faults import FaultInjectionMiddleware
from registro.lifecycle import DrainMiddleware, Lifecycle
from registro.limits import RequestLimitsMiddleware
from registro.settings import Settings
from registro.store import open_store
from registro.store.migrate import head_revision
from registro.telemetry import metrics
from registro.telemetry.requests import RequestTelemetryMiddleware

POOL_SAMPLE_SECONDS = 1.0


async def _sample_pool(app: FastAPI) -> None:
    while True:
        metrics.record_pool(*app.state.store.pool_usage())
        await asyncio.sleep(POOL_SAMPLE_SECONDS)


def _lifespan(settings: Settings, drain_on_sigterm: bool) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = await open_store(settings.database, settings.db_pool_size)
        app.state.authenticator = Authenticator(app.state.store, settings.auth_cache_seconds)
        if drain_on_sigterm:
            app.state.lifecycle.drain_on_sigterm(settings.drain_seconds)
        sampler = asyncio.create_task(_sample_pool(app))
        try:
            yield
        finally:
            sampler.cancel()
            await app.state.store.close()
            if app.state.tracer_provider is not None:
                app.state.tracer_provider.shutdown()
            metrics.forget_this_process()

    return lifespan


def _openapi_with_security(app: FastAPI) -> Any:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def create_app(
    settings: Settings, lifecycle: Lifecycle | None = None, drain_on_sigterm: bool = False
) -> ASGIApp:
    """The ASGI application. The store is opened by the lifespan, once per worker process."""
    api = FastAPIOffline(
        title="registro",
        version=__version__,
        description="A registry of uniquely named records.",
        redoc_url=None,
        lifespan=_lifespan(settings, drain_on_sigterm),
    )
    api.state.settings = settings
    api.state.lifecycle = lifecycle or Lifecycle()
    api.state.schema_head = head_revision()
    api.state.tracer_provider = None
    api.openapi = _openapi_with_security(api)  # type: ignore[method-assign]
    errors.install(api)
    for module in (data, audit, health):
        api.include_router(module.router)
    metrics.BUILD_INFO.labels(__version__, settings.git_commit).set(1)

    app: ASGIApp = api
    if settings.faults_enabled:
        app = FaultInjectionMiddleware(app, settings.fault_error_rate, settings.fault_latency_ms)
    app = RequestLimitsMiddleware(app, settings.max_body_bytes)
    app = DrainMiddleware(app, api.state.lifecycle)
    app = RequestTelemetryMiddleware(app)
    if settings.otel_exporter_otlp_endpoint:
        from registro.telemetry.tracing import traced

        app, api.state.tracer_provider = traced(
            app, settings.otel_exporter_otlp_endpoint, settings.otel_service_name
        )
    return app
