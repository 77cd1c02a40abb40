"""What a connection may cost a worker (HttpLimits, enforced by registro.http).

A body's bounds (REGISTRO_MAX_BODY_BYTES of JSON) are registro.middleware's RequestLimitsMiddleware.
"""

from __future__ import annotations

from dataclasses import dataclass

from registro.settings import Settings


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one connection may cost a worker, against slow or oversized clients."""

    max_header_bytes: int = 16_384
    header_timeout: float = 5.0  # seconds for the request line and headers
    body_timeout: float = 10.0  # seconds for the body, once the headers are in
    # Seconds a response may wait, without any of it being taken, for a client that does not
    # read. No setting: a client reading at any pace resets it, so one bound suits every client.
    send_timeout: float = 10.0
    max_connections: int = 1000  # per worker


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=settings.http_max_header_bytes,
        header_timeout=settings.http_header_timeout_seconds,
        body_timeout=settings.http_body_timeout_seconds,
        max_connections=settings.http_max_connections,
    )
