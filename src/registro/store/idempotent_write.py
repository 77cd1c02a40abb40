"""Idempotency keys in the database: a write and the response it got commit together.

A write sent with an Idempotency-Key runs in one transaction that first claims the caller's key
(an insert on the (actor, key) primary key), then writes, then stores the response on the key's
row. So a key exists exactly when its write does: a failover that loses the write loses the key
with it, and a retry writes once. A second request with the key waits on the first one's row
lock (the primary key's) until that transaction ends, then finds the stored response.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from registro.store.base import Store

# Expired keys are deleted a batch at a time, a bounded statement on the created_at index, never
# a scan of the table inside a request: once an interval per process while the batches come back
# short, and on the next keyed write after a full one (more are left). A request runs at most
# one batch, and a process that is behind purges a batch per keyed write, so the purge keeps up
# with any write rate (each keyed write adds one key).
PURGE_BATCH = 1000
PURGE_INTERVAL_SECONDS = 60.0


class KeyReused(Exception):
    """The key was first used for another request (method, path or body)."""


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    actor: str
    key: str
    fingerprint: str  # SHA-256 of the method, path and body (registro.api.idempotency_header)
    kept: timedelta  # how long a key is remembered

    def cutoff(self) -> datetime:
        """Keys created before this have expired: they count as never used."""
        return datetime.now(UTC) - self.kept


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    response: StoredResponse
    replayed: bool  # True: the first request's response, and nothing was written now


# The write itself: given the store whose operations run in the key's transaction.
Write = Callable[["Store"], Awaitable[StoredResponse]]


class PurgeClock:
    """Says when this process is due to delete a batch of expired keys."""

    def __init__(self, batch: int = PURGE_BATCH) -> None:
        self.batch = batch
        self._next = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + PURGE_INTERVAL_SECONDS
        return True

    def purged(self, deleted: int) -> None:
        """A full batch: more may be left, so the next keyed write purges again."""
        if deleted >= self.batch:
            self._next = 0.0


class Transaction(Protocol):
    """One open transaction of a store: the key's statements, and `store`, whose operations
    run in it (each in a savepoint where the database has them)."""

    @property
    def store(self) -> Store: ...
    async def claim(self, request: IdempotentRequest, cutoff: datetime) -> bool:
        """The key is this request's now: new, or expired and taken over. False when it is in
        use; the claim then waited for the transaction that holds it to end."""

    async def used(self, request: IdempotentRequest) -> tuple[str, int | None, str | None]:
        """The key's fingerprint, status and body."""

    async def complete(self, request: IdempotentRequest, response: StoredResponse) -> None: ...


class Transactional(Protocol):
    async def purge_expired(self, cutoff: datetime, batch: int) -> int:
        """Delete up to `batch` keys created before `cutoff`; how many went."""

    async def in_transaction(self, work: Callable[[Transaction], Awaitable[Outcome]]) -> Outcome:
        """`work` in one transaction, committed when it returns, rolled back when it raises."""


async def once(
    store: Transactional, purge: PurgeClock, request: IdempotentRequest, write: Write
) -> Outcome:
    """The idempotent write, for every store: the claim of the key, the write and its response
    in one explicit transaction, which the write is handed (never found in a context)."""
    cutoff = request.cutoff()
    if purge.due():
        purge.purged(await store.purge_expired(cutoff, purge.batch))

    async def attempt(transaction: Transaction) -> Outcome:
        if not await transaction.claim(request, cutoff):
            return replay(request.fingerprint, *await transaction.used(request))
        response = await write(transaction.store)
        await transaction.complete(request, response)
        return Outcome(response, replayed=False)

    return await store.in_transaction(attempt)


def replay(fingerprint: str, row_fingerprint: str, status: int | None, body: str | None) -> Outcome:
    """The stored response of a key already used, or KeyReused for another request."""
    if row_fingerprint != fingerprint:
        raise KeyReused
    # A row is visible to others only committed, and it commits with its response.
    assert status is not None and body is not None
    return Outcome(StoredResponse(status, body.encode()), replayed=True)


# The statements, in the placeholders of both drivers: `$n` (asyncpg), rewritten to `?n` for
# SQLite, which numbers its parameters the same way.
# Claim a key: a new row, or an expired one taken over; no row back when the key is in use.
CLAIM = """
    INSERT INTO idempotency_keys (actor, key, fingerprint, created_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (actor, key) DO UPDATE
    SET fingerprint = excluded.fingerprint, created_at = excluded.created_at, status = NULL,
        body = NULL
    WHERE idempotency_keys.created_at < $5
    RETURNING 1
"""
USED = "SELECT fingerprint, status, body FROM idempotency_keys WHERE actor = $1 AND key = $2"
COMPLETE = "UPDATE idempotency_keys SET status = $3, body = $4 WHERE actor = $1 AND key = $2"


def sqlite_placeholders(statement: str) -> str:
    return statement.replace("$", "?")
