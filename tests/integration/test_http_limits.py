"""Slow or oversized clients cost a worker a bounded time and memory, over raw sockets.

Each bound is a setting (small here, so the test is quick): the head's size and time, the body's
time, idle keep-alive, and the number of connections per worker. Every refusal is JSON.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.service import Service, running_service

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE = 1
MAX_HEADER_BYTES = 4096
MAX_CONNECTIONS = 20
SLACK = 1.5  # a loaded machine


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp: Path = tmp_path_factory.mktemp("http")
    env = {
        "REGISTRO_HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "REGISTRO_HTTP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "REGISTRO_HTTP_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
        "REGISTRO_HTTP_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
        "REGISTRO_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }
    with running_service(f"sqlite:///{tmp}/registro.db", tmp / "service.log", **env) as svc:
        yield svc


def _connect(service: Service) -> socket.socket:
    host, port = service.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _one_livez(sock: socket.socket) -> None:
    """Send GET /livez on a kept-alive connection and read its whole response."""
    sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while b'"alive"' not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200")


def _status_and_json(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), raw[:500]
    return int(head.split(b" ", 2)[1]), json.loads(body)


def _refused_after(service: Service, request: bytes) -> tuple[int, dict[str, object], float]:
    with _connect(service) as sock:
        started = time.monotonic()
        if request:
            sock.sendall(request)
        raw = _read_all(sock)
        seconds = time.monotonic() - started
    status, body = _status_and_json(raw)
    return status, body, seconds


def test_a_head_that_never_ends_is_408_after_the_header_timeout(service: Service) -> None:
    for partial in (b"", b"GET /livez HTTP/1.1\r\nHost: x\r\n"):
        status, body, seconds = _refused_after(service, partial)
        assert status == 408 and body["message"]
        assert HEADER_TIMEOUT * 0.9 <= seconds < HEADER_TIMEOUT + SLACK


def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_header_timeout(service: Service) -> None:
    with _connect(service) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /livez HTTP/1.1\r\n")
        with pytest.raises(OSError):
            while time.monotonic() - started < HEADER_TIMEOUT + SLACK + 2:
                sock.sendall(b"X-A: b\r\n")  # each line resets an idle timer, not this one
                time.sleep(0.1)
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK


def test_an_oversized_head_is_431_before_it_is_buffered(service: Service) -> None:
    request = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (4 * MAX_HEADER_BYTES)
    status, body, _ = _refused_after(service, request)
    assert status == 431 and str(MAX_HEADER_BYTES) in str(body["message"])
    small = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * (MAX_HEADER_BYTES // 2)
    with _connect(service) as sock:
        sock.sendall(small + b"\r\nConnection: close\r\n\r\n")
        assert _status_and_json(_read_all(sock))[0] == 200


def test_the_head_limit_is_per_request_not_per_read(service: Service) -> None:
    """A head over the limit, pipelined behind a small request in the same read, is refused
    like one sent alone; a head just under it, likewise pipelined, is served."""
    small = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
    over = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\n"
    with _connect(service) as sock:
        sock.sendall(small + over)
        raw = _read_all(sock)
    first, _, rest = raw.partition(b"HTTP/1.1 ")[2].partition(b"HTTP/1.1 ")
    assert first.startswith(b"200"), raw[:300]
    assert rest.startswith(b"431"), raw[:600]
    under = b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"a" * (MAX_HEADER_BYTES - 200)
    with _connect(service) as sock:
        sock.sendall(small + under + b"\r\nConnection: close\r\n\r\n")
        assert _read_all(sock).count(b"HTTP/1.1 200") == 2


def test_a_body_that_never_ends_is_408_after_the_body_timeout(service: Service) -> None:
    request = (
        b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n" + b'{"name": '
    )
    status, body, seconds = _refused_after(service, request)
    assert status == 408 and body["message"]
    assert BODY_TIMEOUT * 0.9 <= seconds < BODY_TIMEOUT + SLACK


def test_an_idle_keep_alive_connection_is_closed(service: Service) -> None:
    with _connect(service) as sock:
        _one_livez(sock)
        started = time.monotonic()
        assert sock.recv(65536) == b""
        assert KEEP_ALIVE * 0.9 <= time.monotonic() - started < KEEP_ALIVE + SLACK


def test_connections_past_the_cap_are_refused_unless_an_idle_one_can_go(
    service: Service,
) -> None:
    held = [_connect(service) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        status, body, _ = _refused_after(service, b"")
        assert status == 503 and body["message"]
        # Kept-alive connections that finished their request make room for new ones.
        for sock in held:
            _one_livez(sock)
        assert httpx.get(f"{service.url}/livez", timeout=5).status_code == 200
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT A REQUEST\r\n\r\n",
        b"GET /livez HTTP/1.1\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\r\n\r\n",
    ],
)
def test_an_unparsable_request_gets_a_json_400(service: Service, request_bytes: bytes) -> None:
    status, body, _ = _refused_after(service, request_bytes)
    assert status == 400 and body == {"message": "Invalid HTTP request"}


def test_a_malformed_chunk_gets_a_json_400(service: Service) -> None:
    """The parse error comes once the application has the request (its head was fine): the
    400 answers that request instead of a silent close."""
    request = (
        b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"nam\r\nzz\r\n'
    )
    time.sleep(0.5)  # earlier lines written
    before = _access_lines(service)
    with _connect(service) as sock:
        sock.sendall(request)
        raw = _read_all(sock)
    status, body = _status_and_json(raw)
    assert status == 400 and body == {"message": "Invalid HTTP request"}
    time.sleep(0.5)  # the log writer's batch
    new = _access_lines(service)[len(before) :]
    # One line, the 400's: not the application's 499 besides.
    assert [line["status"] for line in new] == [400], new
    assert new[0]["method"] == "POST" and new[0]["path"] == "/data"
    assert new[0]["request_id"].encode() in raw


def _access_lines(service: Service) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in service.output().splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "registro.access"]


def test_every_refusal_has_a_request_id_a_log_line_and_a_metric(service: Service) -> None:
    """A refusal of the HTTP layer is a request like any other to whoever watches: a flood of
    connections or of malformed requests shows in the logs and the metrics."""
    refusals = {
        400: b"NOT A REQUEST\r\n\r\n",
        408: b"GET /livez HTTP/1.1\r\n",
        431: b"GET /livez HTTP/1.1\r\nX-Big: " + b"a" * (2 * MAX_HEADER_BYTES),
    }
    ids = {}
    for status, request in refusals.items():
        with _connect(service) as sock:
            sock.sendall(request)
            raw = _read_all(sock)
        assert raw.startswith(b"HTTP/1.1 %d" % status), raw[:200]
        head = raw.partition(b"\r\n\r\n")[0].decode().lower()
        ids[status] = head.partition("x-request-id: ")[2].partition("\r\n")[0]
        assert len(ids[status]) == 32, head
    held = [_connect(service) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with _connect(service) as sock:
            raw = _read_all(sock)
        assert raw.startswith(b"HTTP/1.1 503") and b"x-request-id: " in raw, raw[:200]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)  # the log writer's batch
    lines = [json.loads(line) for line in service.output().splitlines() if line.startswith("{")]
    logged = {line["request_id"]: line for line in lines if line["logger"] == "registro.access"}
    for status, rid in ids.items():
        assert logged[rid]["status"] == status, logged[rid]
        assert logged[rid]["route"] == "unmatched"
    assert any(line.get("status") == 503 for line in logged.values())
    exposition = httpx.get(f"{service.url}/metrics", timeout=5).text
    for status in (400, 408, 431, 503):
        assert f'route="unmatched",status="{status}"' in exposition, status


def test_a_request_without_host_is_answered_in_json(service: Service) -> None:
    with _connect(service) as sock:
        sock.sendall(b"GET /data/1 HTTP/1.1\r\nConnection: close\r\n\r\n")
        status, body = _status_and_json(_read_all(sock))
    assert status < 500 and body["message"]


def test_a_client_that_left_is_logged_as_such_not_as_the_status_it_never_got(
    tmp_path: Path,
) -> None:
    slow = {"REGISTRO_FAULT_LATENCY_MS": "1500"}  # the response comes after the client left
    with running_service(f"sqlite:///{tmp_path}/r.db", tmp_path / "service.log", **slow) as svc:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{svc.url}/data", timeout=0.3, headers={"X-Request-ID": "gave-up"})
        httpx.get(f"{svc.url}/data", timeout=10, headers={"X-Request-ID": "waited"})
        time.sleep(0.5)
        lines = [json.loads(line) for line in svc.output().splitlines() if line.startswith("{")]
    status = {line.get("caller_request_id"): line.get("status") for line in lines}
    assert status["gave-up"] == 499
    assert status["waited"] == 200
