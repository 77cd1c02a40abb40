"""Graceful shutdown: on SIGTERM, report not-ready first, keep serving, then stop.

The load balancer needs time to see `/readyz` turn 503 and take the instance out of its pool; a
server that stopped accepting at once would drop the requests still being routed to it. So the
first SIGTERM only starts draining: `/readyz` answers 503, responses ask keep-alive clients to
reconnect elsewhere, and after `REGISTRO_DRAIN_SECONDS` the server's own shutdown runs (stop
accepting, finish in-flight requests, exit). A second SIGTERM skips the wait.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("registro.lifecycle")


class Lifecycle:
    def __init__(self) -> None:
        self.draining = False

    def drain_on_sigterm(self, seconds: float) -> None:
        """Wrap the server's SIGTERM handler (call from the event loop, in the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        stop_server = signal.getsignal(signal.SIGTERM)

        def stop() -> None:
            if callable(stop_server):
                stop_server(signal.SIGTERM, None)
            else:
                raise SystemExit(0)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            if self.draining:
                loop.call_soon_threadsafe(stop)
                return
            self.draining = True
            logger.info("draining", extra={"fields": {"drain_seconds": seconds}})
            loop.call_soon_threadsafe(loop.call_later, seconds, stop)

        signal.signal(signal.SIGTERM, on_sigterm)


class DrainMiddleware:
    """While draining, close keep-alive connections after each response."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
