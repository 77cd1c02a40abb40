"""The service under uvicorn in a thread of the test process, with HTTP limits of the test's
choosing (some are not settings, so a `registro serve` process cannot be given them)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from registro.http import BoundedHttpToolsProtocol
from registro.limits import HttpLimits
from tests.support.postgres import free_port


@dataclass
class Served:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def serving(
    app: ASGIApp,
    limits: HttpLimits,
    protocol_class: type[BoundedHttpToolsProtocol] = BoundedHttpToolsProtocol,
) -> Iterator[Served]:
    protocol = type("TestProtocol", (protocol_class,), {"limits": limits})
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=free_port(),
        loop="uvloop",
        http=protocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_keep_alive=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield Served(config.host, config.port)
    finally:
        server.should_exit = True
        thread.join(30)
