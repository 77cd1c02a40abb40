"""Bounded load against the stack's public address, recording every request.

A thread runs an asyncio loop with `concurrency` workers, together sending at most `rate`
requests per second, stopping at `stop()`, after `max_seconds`, or after `max_requests`,
whichever comes first. Every request is recorded with its start/end time and outcome, so the
drills count failures instead of sampling them.
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

BASE_URL = "https://127.0.0.1:8443"


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

    @property
    def ok(self) -> bool:
        return self.status == 200


class Load:
    def __init__(
        self,
        *,
        ca: str,
        key: str,
        ops: Sequence[str] = ("read", "write", "version"),
        rate: float = 40,
        concurrency: int = 8,
        max_seconds: float = 180,
        max_requests: int = 20_000,
        timeout: float = 10,
    ) -> None:
        self.ca, self.key, self.ops = ca, key, tuple(ops)
        self.rate, self.concurrency = rate, concurrency
        self.max_seconds, self.max_requests, self.timeout = max_seconds, max_requests, timeout
        self.results: list[Result] = []
        self.in_flight: dict[int, float] = {}  # request number -> start time
        self.marks: list[tuple[str, float]] = []  # the drill's moments (kill, promotion...)
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._prefix = f"e2e-{uuid.uuid4().hex[:8]}"
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Result]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 15)
        if self._thread.is_alive():
            raise RuntimeError("load generator did not stop")
        return self.results

    def mark(self, label: str, at: float | None = None) -> float:
        """Record a moment of the drill (now, or `at`) for its timeline; return its time."""
        moment = time.time() if at is None else at
        self.marks.append((label, moment))
        return moment

    def started_before(self, moment: float) -> list[float]:
        """Start times of the requests in flight at `moment` (call it at that moment)."""
        return [s for s in list(self.in_flight.values()) if s <= moment]

    def wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(
            base_url=BASE_URL,
            verify=ssl.create_default_context(cafile=self.ca),
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
        self.in_flight[number] = start
        name = None
        try:
            if op == "write":
                name = f"{self._prefix}-{number}"
                response = await client.post(
                    "/data", json={"name": name}, headers={"Authorization": f"Bearer {self.key}"}
                )
            elif op == "read":
                response = await client.get("/data", params={"limit": 10})
            elif op == "version":
                response = await client.get("/version")
            else:
                raise ValueError(op)
            result = Result(op, start, time.time(), response.status_code, None, name)
            if response.status_code == 200 and op == "write":
                result.id = response.json()["id"]
            elif response.status_code == 200 and op == "version":
                result.commit = response.json()["commit"]
            elif response.status_code != 200:
                result.error = response.text[:200]
        except httpx.HTTPError as exc:
            result = Result(
                op, start, time.time(), None, f"{type(exc).__name__}: {exc}"[:200], name
            )
        finally:
            self.in_flight.pop(number, None)
        self.results.append(result)


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
