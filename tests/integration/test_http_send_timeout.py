"""A response waits a bounded time for a client that does not read it.

uvicorn pauses a response while the transport's write buffer is above its high-water mark
(HttpToolsProtocol.pause_writing) and has no bound on how long; such a connection is never idle,
so at the connection limit it could not make room, and every new client got 503.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registro.app import create_app
from registro.limits import HttpLimits
from registro.settings import load_settings
from registro.store.migrate import upgrade
from tests.support.inprocess import Served, serving

SEND_TIMEOUT = 1.0
MAX_CONNECTIONS = 4
SLACK = 2.0


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path}/registro.db"
    upgrade(url)
    app = create_app(load_settings(env="dev", database_url=url))
    limits = HttpLimits(max_connections=MAX_CONNECTIONS, send_timeout=SEND_TIMEOUT)
    with serving(app, limits) as server:
        yield server


def _never_reading(served: Served) -> socket.socket:
    """A connection that asks for far more than the buffers between it and the server hold,
    and reads none of it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((served.host, served.port))
    sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
    return sock


def test_clients_that_never_read_are_cut_after_the_send_timeout_and_free_their_place(
    served: Served,
) -> None:
    assert len(httpx.get(f"{served.url}/openapi.json").content) > 10_000
    stalled = [_never_reading(served) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)
        refused = httpx.get(f"{served.url}/livez", timeout=5)
        assert refused.status_code == 503  # at the limit, and none of them idle
        started = time.monotonic()
        while True:
            response = httpx.get(f"{served.url}/livez", timeout=5)
            if response.status_code == 200:
                break
            assert time.monotonic() - started < SEND_TIMEOUT + SLACK, "still locked out"
            time.sleep(0.1)
        for sock in stalled:  # each was closed by the server: end of stream or reset
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(1 << 20):
                    pass
    finally:
        for sock in stalled:
            sock.close()
