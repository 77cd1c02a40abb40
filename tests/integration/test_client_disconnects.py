"""A client that leaves before its response is written is a 499, not a 500 and a traceback.

Pipelined large responses, then a close without reading: the client's kernel answers the
server's next bytes with a reset, uvloop closes the transport at once and calls the protocol's
connection_lost only on the next loop iteration. A response written in between hit uvloop's
closed handle (RuntimeError from UVStream.write), which the error layer logged as an ERROR
with its traceback and the metrics counted as 500.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from registro.app import create_app
from registro.limits import HttpLimits
from registro.settings import load_settings
from registro.store.migrate import upgrade
from tests.support.inprocess import Served, serving

CONNECTIONS = 60


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path}/registro.db"
    upgrade(url)
    with serving(create_app(load_settings(env="dev", database_url=url)), HttpLimits()) as server:
        with httpx.Client(base_url=server.url) as client:
            for number in range(100):
                client.post("/data", json={"name": f"{number:03d}" + "x" * 90})
        yield server


def _count(status: int) -> float:
    labels = {"method": "GET", "route": "/data", "status": str(status)}
    return REGISTRY.get_sample_value("registro_http_requests_total", labels) or 0.0


def test_pipelined_requests_of_a_client_that_left_are_499_without_an_error(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    before = {status: _count(status) for status in (499, 500)}
    with caplog.at_level(logging.WARNING):
        for number in range(CONNECTIONS):
            sock = socket.socket()
            if number % 2:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect((served.host, served.port))
            sock.sendall(b"GET /data?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n" * 100)
            time.sleep((0, 0.001, 0.01, 0.1)[number % 4])
            sock.close()
        time.sleep(0.5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert _count(500) == before[500]
    assert _count(499) > before[499]  # the clients did leave mid-response
