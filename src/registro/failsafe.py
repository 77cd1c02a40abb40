"""The last answer to a request the application did not answer: always JSON, logged once.

A bug is a JSON 500, logged here once (Starlette's own fallback would log it and re-raise it for
uvicorn to log again, in plain text). A request still running when the shutdown deadline cancels
it is a JSON 503 with `Retry-After`: the client may safely try another instance.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registro.api import responses

logger = logging.getLogger("registro.errors")

RETRY = {"Retry-After": "1"}


class FailsafeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except asyncio.CancelledError:
            logger.warning("request cut at the shutdown deadline", extra=_where(scope))
            if not started:
                reply = responses.json({"message": "Server shutting down, try again"}, 503, RETRY)
                await reply(scope, receive, send)
        except Exception:
            logger.exception("unhandled error", extra=_where(scope))
            if not started:
                await responses.json({"message": "Internal server error"}, 500)(
                    scope, receive, send
                )


def _where(scope: Scope) -> dict[str, object]:
    return {"fields": {"method": scope["method"], "path": scope["path"]}}
