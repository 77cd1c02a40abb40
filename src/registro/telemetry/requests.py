"""What is known of a request for its log line and metrics: its ids and its client.

RequestTelemetryMiddleware (registro.middleware) records every request the application answers,
record_refusal (here) every one the HTTP layer (registro.http) refuses itself.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from collections.abc import Mapping
from typing import Any

from starlette.types import Scope

from registro.store.schema import REQUEST_ID_MAX_LENGTH
from registro.telemetry import metrics
from registro.telemetry.logs import access_log

REQUEST_ID_HEADER = b"x-request-id"
# Logged and counted for a client that left before its response was written (nginx's code).
CLIENT_CLOSED_REQUEST = 499
CLIENT_DISCONNECTED = "registro.client_disconnected"  # set by registro.http
# Set by registro.http when it answered the request itself (its body was too slow or malformed):
# the line and the metric are its own, and the application's are left out.
ANSWERED_BY_SERVER = "registro.answered_by_server"
UNMATCHED = "unmatched"  # the route label of a request no route took
TRACE_ID = "trace_id"  # the request's state key for its sampled trace id (telemetry.tracing)
# A caller's id is kept only if it is short and plain; anything else could forge log lines.
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,%d}" % REQUEST_ID_MAX_LENGTH)
# The longest text form of an IP address (IPv6 with an embedded IPv4 address).
_IP_MAX_LENGTH = 45


# Ids are drawn from the OS's random source this many at a time: a system call per request
# (getrandom) was a measurable share of a GET's CPU under load.
IDS_PER_READ = 256
_ids: list[str] = []
os.register_at_fork(after_in_child=_ids.clear)  # a forked process must never reuse its parent's


def new_request_id() -> str:
    """The service's own id for a request: 128 random bits as 32 hex digits."""
    if not _ids:
        drawn = os.urandom(16 * IDS_PER_READ).hex()
        _ids.extend(drawn[start : start + 32] for start in range(0, len(drawn), 32))
    return _ids.pop()


def safe_caller_request_id(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The caller's X-Request-ID, if it is a plain token of at most 128 characters."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            return value.decode() if _SAFE_REQUEST_ID.fullmatch(value) else None
    return None


def request_id(scope: Scope) -> str | None:
    """The service's own id for the request: always generated, never taken from the caller."""
    rid: str | None = scope.get("state", {}).get("request_id")
    return rid


def trace_id(scope: Mapping[str, Any]) -> str | None:
    """The id of the trace that records this request, when tracing is on and sampled it."""
    tid: str | None = scope.get("state", {}).get(TRACE_ID)
    return tid


def caller_request_id(scope: Mapping[str, Any]) -> str | None:
    """The X-Request-ID the caller sent, if it was a plain token of at most 128 characters."""
    rid: str | None = scope.get("state", {}).get("caller_request_id")
    return rid


def client_address(scope: Mapping[str, Any]) -> str | None:
    """The client's IP address, or None when what the server was given is not one.

    uvicorn (proxy_headers) has already replaced the peer with the rightmost X-Forwarded-For entry
    that is not a trusted proxy (REGISTRO_FORWARDED_ALLOW_IPS). A trusted proxy that passes on a
    malformed entry, or a client inside a trusted range, could make that any text: only a valid
    address is recorded, in its canonical form.
    """
    client = scope.get("client")
    host = client[0] if client else None
    if not isinstance(host, str) or len(host) > _IP_MAX_LENGTH:
        return None
    return _canonical_address(host)


def record(
    method: str | None,
    path: str | None,
    route: str,
    status: int,
    seconds: float,
    rid: str,
    caller_rid: str | None,
    client: str | None,
    trace: str | None = None,
) -> None:
    """A request's metric and access log line, one shape whether the application answered it
    or the HTTP layer refused it (an unknown method is counted as OTHER)."""
    metrics.record_request(method or "OTHER", route, status, seconds)
    access_log.write(
        {
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": rid,
            "trace_id": trace,
            "caller_request_id": caller_rid,
            "client": client,
        }
    )


def record_refusal(
    scope: Mapping[str, Any] | None, status: int, seconds: float, rid: str, peer: str | None
) -> None:
    """The line and the metric of a request the HTTP layer refused (registro.http), with what
    is known of it: its scope once its head was read, else nothing but the peer's address."""
    if scope is None:
        client = _canonical_address(peer) if peer and len(peer) <= _IP_MAX_LENGTH else None
        record(None, None, UNMATCHED, status, seconds, rid, None, client)
        return
    route = getattr(scope.get("route"), "path", None) or UNMATCHED
    caller_rid = caller_request_id(scope)
    client = client_address(scope)
    record(scope.get("method"), scope.get("path"), route, status, seconds, rid, caller_rid, client)


@functools.lru_cache(maxsize=4096)
def _canonical_address(host: str) -> str | None:
    """Parsing an address costs more than the rest of the request's telemetry, and the same few
    clients (the load balancer's view of them) come back on every request."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if getattr(address, "scope_id", None) else str(address)
