"""Fault injection for canary drills: errors and latency on the API routes, never in prod.

Settings refuse REGISTRO_FAULT_* when REGISTRO_ENV=prod; the middleware is only installed when
one of them is set, so it costs nothing otherwise. Health, metrics and docs are left alone so the
instance stays observable while it misbehaves.
"""

from __future__ import annotations

import asyncio
import random

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

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
            body = orjson.dumps({"message": "Injected fault"})
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
