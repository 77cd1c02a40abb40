"""Bounded load against a deployment's public address, recording every request.

The drills point it at the local stack, `make measure` at any environment (tests/e2e/measure.py).
A thread runs an asyncio loop with `concurrency` workers, together sending at most `rate`
requests per second, stopping at `stop()`, after `max_seconds`, or after `max_requests`,
whichever comes first. Every request is recorded with its start/end time and outcome, so the
drills count failures instead of sampling them. A write is one logical request: it is sent with
an Idempotency-Key and retried with it up to `write_attempts` times (tests/support/idempotent.py),
and recorded once, from its first attempt's start to its last answer, with its attempt count.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from tests.support import idempotent


@dataclass
class Result:
    op: str
    start: float  # time.time()
    end: float
    status: int | None  # None: no HTTP response (connection error, timeout)
    error: str | None
    name: str | None = None
    id: int | None = None
    commit: str | None = None
    key: str | None = None  # a write's Idempotency-Key
    attempts: int = 1
    retried: tuple[str, ...] = ()  # why each attempt but the last was retried
    replayed: bool = False  # a write answered with the stored response of an earlier attempt

    @property
    def ok(self) -> bool:
        return self.status == 200


def trust(ca: str | None) -> ssl.SSLContext:
    """Verify servers against the CA file `ca`, or against the system's trust store."""
    return ssl.create_default_context(cafile=ca)


class Load:
    def __init__(
        self,
        *,
        base_url: str,
        ca: str | None,
        key: str,
        ops: Sequence[str] = ("read", "write", "version"),
        rate: float = 40,
        concurrency: int = 8,
        max_seconds: float = 180,
        max_requests: int = 20_000,
        timeout: float = 10,
        write_attempts: int = 1,
        backoff: float = 0.2,
        prefix: str = "e2e",
    ) -> None:
        self.base_url, self.ca, self.key, self.ops = base_url, ca, key, tuple(ops)
        self.rate, self.concurrency = rate, concurrency
        self.max_seconds, self.max_requests, self.timeout = max_seconds, max_requests, timeout
        self.write_attempts, self.backoff = write_attempts, backoff
        self.results: list[Result] = []
        self.marks: list[tuple[str, float]] = []  # the drill's moments (kill, promotion...)
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self.prefix = f"{prefix}-{uuid.uuid4().hex[:8]}"  # of every name this load writes
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Result]:
        """Stop sending; wait for the requests in flight, a write through all its retries."""
        self._stop.set()
        longest = idempotent.longest(self.write_attempts, self.backoff, self.timeout)
        self._thread.join(timeout=longest + 15)
        if self._thread.is_alive():
            raise RuntimeError("load generator did not stop")
        return self.results

    def mark(self, label: str, at: float | None = None) -> float:
        """Record a moment of the drill (now, or `at`) for its timeline; return its time."""
        moment = time.time() if at is None else at
        self.marks.append((label, moment))
        return moment

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(
            base_url=self.base_url,
            verify=trust(self.ca),
            timeout=self.timeout,
            limits=limits,
        ) as client:
            deadline = time.monotonic() + self.max_seconds
            await asyncio.gather(
                *(self._worker(client, w, deadline) for w in range(self.concurrency))
            )

    async def _worker(self, client: httpx.AsyncClient, worker: int, deadline: float) -> None:
        period = self.concurrency / self.rate
        next_at = time.monotonic() + worker * period / self.concurrency
        for step in itertools.count(worker):
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            number = next(self._numbers)
            if number >= self.max_requests:
                return
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += period
            await self._one(client, number, self.ops[step % len(self.ops)])

    async def _one(self, client: httpx.AsyncClient, number: int, op: str) -> None:
        start = time.time()
        try:
            if op == "write":
                result = await self._write(client, start, f"{self.prefix}-{number}")
            else:
                if op == "read":
                    response = await client.get("/data", params={"limit": 10})
                elif op == "version":
                    response = await client.get("/version")
                else:
                    raise ValueError(op)
                result = answered(Result(op, start, time.time(), None, None), response)
        except httpx.HTTPError as exc:
            result = Result(op, start, time.time(), None, f"{type(exc).__name__}: {exc}"[:200])
        self.results.append(result)

    async def _write(self, client: httpx.AsyncClient, start: float, name: str) -> Result:
        written = await idempotent.write_once(
            client,
            "POST",
            "/data",
            json={"name": name},
            headers={"Authorization": f"Bearer {self.key}"},
            attempts=self.write_attempts,
            backoff=self.backoff,
        )
        result = Result(
            "write",
            start,
            time.time(),
            None,
            None,
            name,
            key=written.key,
            attempts=written.attempts,
            replayed=written.replayed,
        )
        if written.response is None:  # no attempt was answered: the last one's error
            result.retried, result.error = tuple(written.errors[:-1]), written.errors[-1]
            return result
        result.retried = tuple(written.errors[: written.attempts - 1])
        return answered(result, written.response)


def in_flight_during(results: Sequence[Result], begin: float, end: float) -> int:
    """How many requests were in flight at some moment from `begin` to `end`.

    A fault lands somewhere between sending its command and the command's return; a request it
    broke can have failed and ended before the command returned, so counting only the requests
    still in flight at the return would miss it.
    """
    return sum(1 for r in results if r.start <= end and r.end >= begin)


def answered(result: Result, response: httpx.Response) -> Result:
    """`result` with what the response says: its status, and the id, commit or error text."""
    result.status = response.status_code
    if response.status_code != 200:
        result.error = response.text[:200]
    elif result.op == "write":
        result.id = response.json()["id"]
    elif result.op == "version":
        result.commit = response.json()["commit"]
    return result


def stored_records(base_url: str, ca: str | None, prefix: str) -> list[tuple[int, str]]:
    """(id, name) of every stored record whose name starts with `prefix`, read page by page."""
    rows, after = [], 0
    with httpx.Client(base_url=base_url, verify=trust(ca), timeout=30) as api:
        for _ in range(1000):  # bounded: 1000 pages of 1000
            page = api.get("/data", params={"limit": 1000, "after": after})
            page.raise_for_status()
            batch = page.json()
            rows += [(r["id"], r["name"]) for r in batch if r["name"].startswith(prefix)]
            if "next" not in page.headers.get("link", ""):
                return rows
            after = batch[-1]["id"]
    raise AssertionError("more than 1,000,000 records: pagination does not end")


def failures(results: Sequence[Result]) -> list[Result]:
    return [r for r in results if not r.ok]


def summary(results: Sequence[Result]) -> dict[str, object]:
    failed = failures(results)
    duration = (max(r.end for r in results) - min(r.start for r in results)) if results else 0
    latencies = sorted(r.end - r.start for r in results if r.ok)
    p99 = latencies[int(0.99 * (len(latencies) - 1))] if latencies else None
    return {
        "requests": len(results),
        "failed": len(failed),
        "failed_share": round(len(failed) / len(results), 4) if results else None,
        "duration_s": round(duration, 1),
        "rate_per_s": round(len(results) / duration, 1) if duration else None,
        "p99_ms": round(p99 * 1000, 1) if p99 is not None else None,
    }


def retries(writes: Sequence[Result]) -> dict[str, int]:
    """How many attempts the logical writes took, how many were retried, and how many of them
    were answered with the stored response of an attempt that had committed."""
    return {
        "writes": len(writes),
        "attempts": sum(r.attempts for r in writes),
        "retried writes": sum(1 for r in writes if r.attempts > 1),
        "replayed answers": sum(1 for r in writes if r.replayed),
    }
