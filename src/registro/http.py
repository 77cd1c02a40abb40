"""uvicorn's httptools protocol, bounded against slow and oversized clients.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) but not a connection that never
finishes its request head (slowloris), nor a body that trickles in, nor the size of the head
(httptools buffers a header whole before handing it over, at a cost that grows faster than its
size), nor the number of open connections (`limit_concurrency` still accepts them, and answers
plain text). This subclass adds those bounds, each a setting, and answers every refusal in JSON:

- the request head must arrive within `header_timeout` (408) and fit in `max_header_bytes` (431);
- the body must arrive within `body_timeout` of the head (408);
- a response may wait at most `send_timeout` for a client that takes none of it (uvicorn waits
  on a full write buffer without a bound): then the connection is aborted;
- at most `max_connections` per worker: past it an idle keep-alive connection is closed to make
  room, and when none is idle the new one gets 503 and is closed at once;
- a request httptools cannot parse gets a JSON 400 instead of uvicorn's plain-text one.

It also writes a response's head together with its body, in one system call (_HeadWithBody).

It relies on uvicorn's HttpToolsProtocol callbacks (pinned in requirements/*.lock; the tests in
tests/integration/test_http_limits.py exercise each bound over raw sockets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, ClassVar

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from registro import error_responses
from registro.limits import HttpLimits
from registro.telemetry.requests import (
    ANSWERED_BY_SERVER,
    CLIENT_DISCONNECTED,
    new_request_id,
    record_refusal,
)

HEAD_TOO_SLOW = "Request headers not received in time"
BODY_TOO_SLOW = "Request body not received in time"


class _HeadTooLarge(Exception):
    """Raised from a parser callback: httptools stops and reports it as a parse error."""


class _SendUnlessGone:
    """A cycle's send that notices the client is gone before uvicorn does.

    A client that resets the connection (it closed with our responses unread) makes uvloop
    close the transport at once but call connection_lost only on the next loop iteration; and
    connection_lost marks only the newest cycle disconnected, not an older pipelined one still
    answering. A write from either raised RuntimeError on the closed handle, which the
    application took for its own error (a 500 and an ERROR traceback). Here that response is
    dropped, as uvicorn drops one after connection_lost, and counted as the client's leaving
    (499).

    It also gives the cycle its connection's `out` as transport, and has it hold each
    response's head for the body (_HeadWithBody)."""

    __slots__ = ("_cycle", "_out", "_send")

    def __init__(self, cycle: RequestResponseCycle, out: _HeadWithBody) -> None:
        self._cycle = cycle
        self._out = out
        self._send = cycle.send
        cycle.transport = out  # type: ignore[assignment]

    async def __call__(self, message: ASGISendEvent) -> None:
        cycle = self._cycle
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()  # before the check: the client may leave meanwhile
        if not cycle.disconnected and cycle.transport.is_closing():
            cycle.disconnected = True
            cycle.scope[CLIENT_DISCONNECTED] = True  # type: ignore[literal-required]
        if message["type"] == "http.response.start" and not cycle.disconnected:
            self._out.hold_head()
        await self._send(message)


class _HeadWithBody:
    """A connection's transport as its cycles see it: a response's head is held until the first
    part of its body, so the two leave in one write (one system call, one TCP segment) rather
    than two. uvicorn writes the head by itself on `http.response.start` (httptools_impl.py
    RequestResponseCycle.send), and each write is a system call and a segment that wakes the
    reader."""

    __slots__ = ("_head", "_hold", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._hold = False
        self._head: bytes | None = None

    def hold_head(self) -> None:
        """The next write is a head: keep it for the write after."""
        self._hold = True

    def write(self, data: bytes) -> None:
        if self._hold:
            self._hold = False
            self._head = data
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self.transport.write(data)

    def flush(self) -> None:
        """Write a held head now: a response without body bytes (HEAD) ends without a write."""
        self._hold = False
        if self._head is not None:
            head, self._head = self._head, None
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    limits: ClassVar[HttpLimits] = HttpLimits()  # set per worker by registro.server.worker_app

    _in_head = True  # the next bytes belong to a request head
    _head_started = False
    _awaiting_body = False
    _head_bytes = 0
    _began = 0.0  # loop time the connection, then each request, began
    _idle = False
    _timer: asyncio.TimerHandle | None = None
    _send_timer: asyncio.TimerHandle | None = None
    # A later pipelined request's refusal, answered once the responses before it are written.
    _deferred: tuple[int, str] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._out = _HeadWithBody(transport)
        self._began = self.loop.time()
        if len(self.connections) > self.limits.max_connections and not self._close_an_idle_one():
            self._refuse(503, "Too many connections, try again")
            return
        self._arm(self.limits.header_timeout, 408, HEAD_TOO_SLOW)

    def _close_an_idle_one(self) -> bool:
        for connection in self.connections:
            if isinstance(connection, BoundedHttpToolsProtocol) and connection._idle:
                connection._idle = False
                connection.transport.close()
                return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._writable()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.scope[CLIENT_DISCONNECTED] = True  # type: ignore[literal-required]
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._idle = False
        if self._deferred is not None:
            return  # the rest belongs to the refused request
        # Feed the head no more than the limit allows, so an oversized one is never buffered.
        while data and self._in_head:
            room = self.limits.max_header_bytes - self._head_bytes
            if room <= 0:
                self._refuse(
                    431, f"Request headers larger than {self.limits.max_header_bytes} bytes"
                )
                return
            chunk, data = data[:room], data[room:]
            self._head_bytes += len(chunk)
            super().data_received(chunk)
            if self.transport.is_closing() or self._deferred is not None:
                return
        if data:
            super().data_received(data)
        # Timers only for what is still incomplete once these bytes are parsed: a request that
        # arrived whole (the usual case) costs none.
        if self._timer is None and not self.transport.is_closing() and self._deferred is None:
            if self._awaiting_body:
                self._arm(self.limits.body_timeout, 408, BODY_TOO_SLOW, True)
            elif self._head_started:
                self._arm(self.limits.header_timeout, 408, HEAD_TOO_SLOW)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        self._began = self.loop.time()

    def on_headers_complete(self) -> None:
        # The head's size per request, from what the parser handed over: the feeding above bounds
        # what it buffers, but counts per read, and one read may end a request and begin the next.
        # 4: ": " and CRLF.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refuse(431, f"Request headers larger than {self.limits.max_header_bytes} bytes")
            raise _HeadTooLarge  # stops the parser; uvicorn's handling finds the answer sent
        self._disarm()
        self._in_head = self._head_started = False
        self._awaiting_body = True
        self._head_bytes = 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and not isinstance(cycle.send, _SendUnlessGone):
            cycle.send = _SendUnlessGone(cycle, self._out)  # type: ignore[method-assign]

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_head = True
        self._awaiting_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        self._out.flush()  # before anything else this connection writes
        super().on_response_complete()
        if self._deferred is not None and not self.pipeline:
            self._answer(*self._deferred)  # a head refused: no scope of its own
            return
        self._idle = not self.pipeline and not self.transport.is_closing()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout, self._not_reading)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._writable()

    def _writable(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _not_reading(self) -> None:
        """The client took nothing for send_timeout: abort, as close() would wait for the
        buffer to drain. connection_lost then ends the response as a disconnect."""
        self._send_timer = None
        self.transport.abort()

    def send_400_response(self, msg: str) -> None:
        if self._deferred is not None:
            return  # the parser stopped on a refusal of ours (_HeadTooLarge)
        # In a body (a malformed chunk), the request is already the application's: answer it.
        self._refuse(400, "Invalid HTTP request", self._awaiting_body)

    def _arm(self, seconds: float, status: int, message: str, body: bool = False) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._refuse, status, message, body)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refuse(self, status: int, message: str, body: bool = False) -> None:
        """Answer in JSON and close.

        `body`: the refused request is the current cycle's (its body was too slow or malformed),
        whose application then sees a disconnect and whose own reply is dropped; if that reply
        has begun, the connection is just closed. Otherwise the refused request is a later one
        than the current cycle's (pipelined): it is answered after the responses before it.
        """
        self._disarm()
        if self.transport.is_closing() or self._deferred is not None:
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._answer(status, message, self.scope if self._head_read() else None)
        elif body and not cycle.response_started:
            cycle.scope[ANSWERED_BY_SERVER] = True  # type: ignore[literal-required]
            self._answer(status, message, cycle.scope)
        elif body:
            self.transport.close()
        else:
            self._deferred = (status, message)
            self._idle = False

    def _head_read(self) -> bool:
        """Whether self.scope is the refused request's, its head read (else the parse of a new
        head began, or none did)."""
        return not self._in_head and not self._head_started

    def _answer(self, status: int, message: str, scope: Mapping[str, Any] | None = None) -> None:
        """Write the refusal and close; log and count it as the application does a request."""
        state = scope.get("state", {}) if scope is not None else {}
        rid = state.get("request_id") or new_request_id()
        self.transport.write(error_responses.raw(status, message, rid))
        self.transport.close()
        peer = self.client[0] if self.client else None
        record_refusal(scope, status, self.loop.time() - self._began, rid, peer)
