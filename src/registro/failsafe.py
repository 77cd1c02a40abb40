"""The last answer to a request the application failed on: a JSON 500, logged once.

Starlette's own fallback would log the error and re-raise it for uvicorn to log again, in plain
text. A request cut at the shutdown deadline is registro.lifecycle's (a JSON 503).
"""

from __future__ import annotations

import contextlib
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from registro import error_responses

logger = logging.getLogger("registro.errors")


class FailsafeMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            if scope["type"] != "http":
                raise
            fields = {"method": scope["method"], "path": scope["path"]}
            logger.exception("unhandled error", extra={"fields": fields})
            reply = error_responses.error(500, "Internal server error")
            with contextlib.suppress(Exception):  # a response already started: nothing to add
                await reply(scope, receive, send)
