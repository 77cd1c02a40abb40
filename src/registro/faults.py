"""Fault injection for canary drills: errors and latency on the API routes, never in prod.

Settings refuse REGISTRO_FAULT_* when REGISTRO_ENV=prod; the middleware is only installed when
one of them is set, so it costs nothing otherwise. Health, metrics and docs are left alone so the
instance stays observable while it misbehaves.
"""

from __future__ import annotations

import asyncio
import random

from starlette.types import ASGIApp, Receive, Scope, Send

from registro.error_responses import error

FAULTY_PREFIXES = ("/data", "/audit")


class FaultInjectionMiddleware:
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
