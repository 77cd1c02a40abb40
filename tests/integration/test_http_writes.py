"""A response leaves the worker in one write: its head together with its body.

uvicorn writes a response's head by itself as soon as the application sends
`http.response.start`, and the body in a write of its own (uvicorn/protocols/http/
httptools_impl.py, RequestResponseCycle.send): two system calls and two TCP segments for every
response, each of which wakes the client. registro.http holds the head until the body's first
part. Here the worker's transport records what it is asked to write.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registro.app import create_app
from registro.http import BoundedHttpToolsProtocol
from registro.limits import HttpLimits
from registro.settings import load_settings
from registro.store.migrate import upgrade
from tests.support.inprocess import Served, serving

WRITES: list[bytes] = []


class _RecordingTransport:
    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _RecordingProtocol(BoundedHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_RecordingTransport(transport))  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path}/registro.db"
    upgrade(url)
    app = create_app(load_settings(env="dev", database_url=url))
    with serving(app, HttpLimits(), _RecordingProtocol) as server:
        yield server


def _exchange(sock: socket.socket, request: bytes, has_body: bool = True) -> bytes:
    """Send `request` on a kept-alive connection and read its whole response."""
    sock.sendall(request)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) if has_body else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, received
        body += chunk
    return head + b"\r\n\r\n" + body


def test_each_response_is_one_write_of_its_head_and_body(served: Served) -> None:
    post = b'{"name":"one"}'
    requests = [
        b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(post), post),
        b"GET /data/1 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /data/999 HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    WRITES.clear()
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        responses = [_exchange(sock, request) for request in requests]
    assert [r.split(b" ", 2)[1] for r in responses] == [b"200", b"200", b"200", b"404"]
    assert responses == WRITES


def test_a_head_request_has_its_head_written_without_a_body(served: Served) -> None:
    """A HEAD's response has no body bytes to carry its head: the head is written when the
    response completes, and the connection serves the next request."""
    WRITES.clear()
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        head = _exchange(sock, b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n", has_body=False)
        after = _exchange(sock, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and after.startswith(b"HTTP/1.1 200")
    assert [head, after] == WRITES
