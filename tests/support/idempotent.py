"""A writer that retries with its Idempotency-Key, as a client of the service should.

For the drills (tests/e2e): httpx only, no import of registro (the e2e venv has no registro), so
the header names are repeated here and tests/unit/test_idempotency.py checks they are the
service's. Each write gets one key for all its attempts; it is retried on what may have left it
applied but unanswered (a timeout, a dropped connection) and on what says "try again" (408,
429, 5xx), never on another 4xx. With the key, a retry of a write that did commit gets the
stored response, so a drill can count lost and duplicated writes as exactly zero.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class Written:
    key: str
    response: httpx.Response | None  # the last answer; None when no attempt got one
    attempts: int
    errors: list[str] = field(default_factory=list)  # why each retried attempt was retried

    @property
    def replayed(self) -> bool:
        return self.response is not None and self.response.headers.get(REPLAYED) == "true"


def delays(attempts: int, backoff: float) -> list[float]:
    """The waits between `attempts` attempts: `backoff`, doubled after each retry."""
    return [backoff * 2**attempt for attempt in range(attempts - 1)]


def longest(attempts: int, backoff: float, timeout: float) -> float:
    """The most seconds one write can take: every attempt timing out, every wait waited."""
    return attempts * timeout + sum(delays(attempts, backoff))


async def write_once(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
    key: str | None = None,
    attempts: int = 5,
    backoff: float = 0.2,
) -> Written:
    """Send one write, retried up to `attempts` times with one key (new if not given)."""
    written = Written(key or str(uuid.uuid4()), None, 0)
    sent = {**(headers or {}), HEADER: written.key}
    waits = delays(attempts, backoff)
    for attempt in range(attempts):
        written.attempts = attempt + 1
        try:
            response = await client.request(method, path, json=json, headers=sent)
        except httpx.TransportError as exc:  # timeouts included: the write may have committed
            written.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        else:
            written.response = response
            if response.status_code not in RETRY_STATUSES:
                return written
            written.errors.append(f"HTTP {response.status_code}")
        if attempt < len(waits):
            await asyncio.sleep(waits[attempt])
    return written
