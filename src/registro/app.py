"""Assembles the service: routes and error handling, inside the HTTP layer (registro.middleware)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from registro import __version__
from registro.api import audit, data, docs, errors, health
from registro.api.openapi import document
from registro.api.operation import Endpoint, Operation, routes
from registro.api.responses import JSON
from registro.auth import Authenticator
from registro.lifecycle import Lifecycle
from registro.middleware import ErrorsMiddleware, wrap
from registro.settings import AuthMode, Settings
from registro.shared import Shared
from registro.store import Timeouts, open_store
from registro.telemetry import metrics
from registro.telemetry.logs import flush as flush_logs

OPERATIONS: Sequence[Operation] = [*data.OPERATIONS, *audit.OPERATIONS, *health.OPERATIONS]
DESCRIPTION = "A registry of uniquely named records."
GAUGE_SAMPLE_SECONDS = 1.0


async def _sample_gauges(state: Shared) -> None:
    while True:
        metrics.sample(*state.store.pool_usage())
        await asyncio.sleep(GAUGE_SAMPLE_SECONDS)


def database_timeouts(settings: Settings) -> Timeouts:
    return Timeouts(
        statement=settings.db_statement_timeout_seconds,
        lock=settings.db_lock_timeout_seconds,
        acquire=settings.db_acquire_timeout_seconds,
    )


def _lifespan(settings: Settings, state: Shared, drain_on_sigterm: bool) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: object) -> AsyncIterator[None]:
        state.store = await open_store(
            settings.database,
            settings.db_pool_size,
            settings.database_password_file,
            timeouts=database_timeouts(settings),
        )
        state.authenticator = Authenticator(state.store, settings.auth_cache_seconds)
        if drain_on_sigterm:
            state.lifecycle.drain_on_sigterm(settings.drain_seconds)
        sampler = asyncio.create_task(_sample_gauges(state))
        try:
            yield
        finally:
            sampler.cancel()
            await state.store.close()
            if state.tracer_provider is not None:
                from registro.telemetry.tracing import stop

                stop(state.tracer_provider.shutdown)
            metrics.forget_this_process()
            flush_logs()  # a worker may then be ended by the signal that stopped it

    return lifespan


def _openapi_endpoint(operations: Sequence[Operation], mode: AuthMode) -> Endpoint:
    """/openapi.json for this auth mode, built on its first request (the name pattern takes a
    moment to compute, which a worker's start need not wait for)."""

    @functools.cache
    def body() -> bytes:
        return orjson.dumps(document(operations, mode, "registro", __version__, DESCRIPTION))

    async def openapi(request: Request) -> Response:
        return Response(body(), media_type=JSON)

    return openapi


class Service:
    """The application inside the HTTP layer: Starlette's router (its routes and the worker's
    lifespan) behind ErrorsMiddleware, and what the worker's requests share.

    Not a Starlette application: that would add two exception layers of its own, each wrapping
    every request's send (ErrorsMiddleware answers for them). As Starlette's does, it puts
    itself in the scope (`request.app`, which registro.shared reads `shared` from); with it
    there, the router raises its 404 and 405 for ErrorsMiddleware to answer in JSON."""

    def __init__(self, router: Router, shared: Shared) -> None:
        self.shared = shared
        self.app = ErrorsMiddleware(router, errors.ANSWERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        await self.app(scope, receive, send)


def create_app(
    settings: Settings, lifecycle: Lifecycle | None = None, drain_on_sigterm: bool = False
) -> ASGIApp:
    """The ASGI application. The store is opened by the lifespan, once per worker process."""
    state = Shared(settings, lifecycle or Lifecycle())
    router = Router(
        routes=[
            *routes(OPERATIONS, settings.auth_mode),
            Route("/openapi.json", _openapi_endpoint(OPERATIONS, settings.auth_mode)),
            *docs.ROUTES,
        ],
        # /data/ is a 404, as any path no route has. Starlette's default redirect to /data
        # builds its Location from the Host header, which the caller writes.
        redirect_slashes=False,
        lifespan=_lifespan(settings, state, drain_on_sigterm),
    )
    metrics.BUILD_INFO.labels(__version__, settings.git_commit).set(1)
    app, state.tracer_provider = wrap(Service(router, state), settings, state.lifecycle)
    return app
