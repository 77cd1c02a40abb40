"""PostgreSQL through asyncpg directly: each operation is one statement, one round trip.

A write and its audit entry are one statement (data-modifying CTEs), so they commit together
without an explicit transaction's extra round trips.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from registro.store import idempotent_write, keys
from registro.store.base import (
    Actor,
    ApiKey,
    AuditEntry,
    DatabaseBusy,
    DatabaseUnavailable,
    NameTaken,
    Record,
    Timeouts,
)
from registro.store.idempotent_write import (
    IdempotentRequest,
    Outcome,
    StoredResponse,
    Transaction,
    Write,
)

# The database is up but did not answer in time: answered 503 "busy".
BUSY_ERRORS = (
    TimeoutError,  # the pool had no free connection in time, or the server went silent
    asyncpg.QueryCanceledError,  # statement_timeout
    asyncpg.LockNotAvailableError,  # lock_timeout
)
# Failures of the database rather than of the request: answered 503, never 500.
CONNECTION_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,  # class 08: connection exceptions
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.InternalClientError,  # a connection torn down mid-protocol (a fast shutdown)
    asyncpg.OperatorInterventionError,  # class 57: shutdown, terminated, cannot connect now
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.InvalidAuthorizationSpecificationError,  # class 28: credentials refused
    asyncpg.InvalidCatalogNameError,  # 3D000: no such database
    asyncpg.ReadOnlySQLTransactionError,  # a demoted primary during failover
)

GET = "SELECT id, name FROM records WHERE id = $1"
PAGE = "SELECT id, name FROM records WHERE id > $1 ORDER BY id LIMIT $2"

# $2..$6: the actor (see _actor); each write's own parameters are $1 and $7.
_AUDIT = """
    INSERT INTO audit (
        at, actor, action, record_id, before, after, request_id, client, caller_request_id,
        trace_id
    )
    SELECT now(), $2, '{action}', id, {before}, {after}, $3, $4, $5, $6 FROM changed
"""
CREATE = """
    WITH changed AS (
        INSERT INTO records (name, created_at, updated_at) VALUES ($1, now(), now())
        ON CONFLICT (name) DO NOTHING RETURNING id, name
    ), audited AS ({audit})
    SELECT id, name FROM changed
""".format(
    audit=_AUDIT.format(
        action="create", before="NULL", after="jsonb_build_object('id', id, 'name', name)"
    )
)
RENAME = """
    WITH old AS (SELECT id, name FROM records WHERE id = $7 FOR UPDATE),
    changed AS (
        UPDATE records r SET name = $1, updated_at = now() FROM old
        WHERE r.id = old.id AND old.name <> $1
        RETURNING r.id, r.name, old.name AS old_name
    ), audited AS ({audit})
    SELECT id, name FROM changed
    UNION ALL SELECT id, name FROM old WHERE name = $1
""".format(
    audit=_AUDIT.format(
        action="update",
        before="jsonb_build_object('id', id, 'name', old_name)",
        after="jsonb_build_object('id', id, 'name', name)",
    )
)
DELETE = """
    WITH changed AS (DELETE FROM records WHERE id = $1 RETURNING id, name),
    audited AS ({audit})
    SELECT id, name FROM changed
""".format(
    audit=_AUDIT.format(
        action="delete", before="jsonb_build_object('id', id, 'name', name)", after="NULL"
    )
)
AUDIT_PAGE = """
    SELECT id, at, actor, action, record_id, before, after, request_id, client, caller_request_id,
        trace_id
    FROM audit WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2
"""
# Expired keys, a batch at a time; rows another transaction holds are left for the next purge.
PURGE_KEYS = """
    WITH gone AS (
        DELETE FROM idempotency_keys WHERE (actor, key) IN (
            SELECT actor, key FROM idempotency_keys WHERE created_at < $1
            LIMIT $2 FOR UPDATE SKIP LOCKED
        ) RETURNING 1
    )
    SELECT count(*) FROM gone
"""


def _actor(actor: Actor) -> tuple[str, str | None, str | None, str | None, str | None]:
    """The audit's $2..$6."""
    return actor.name, actor.request_id, actor.client, actor.caller_request_id, actor.trace_id


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release: nothing to undo. The store changes no session state (no SET,
    advisory lock, LISTEN or cursor outside a transaction: test_postgres_session.py checks), and
    asyncpg itself rolls back a transaction left open. Its default reset query is a round trip to
    the server on every release: one more statement per request."""


async def _init_connection(connection: asyncpg.Connection) -> None:
    try:
        await connection.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
    except BaseException:
        # asyncpg closes a connection whose init failed gracefully (pool.py
        # _get_new_connection), which first waits for a timed-out query's cancellation without
        # a bound: a terminated connection has nothing to wait for.
        connection.terminate()
        raise


# Each operation is one statement, so one that lost a deadlock (rolled back whole) is retried.
DEADLOCK_RETRIES = 3
# The client gives up this long after the server's statement_timeout should have fired, for a
# server that went silent (a network partition) rather than one that cancels.
CLIENT_GRACE_SECONDS = 1.0


class _DatabaseErrors:
    """asyncpg's failures as the store's; a deadlock passes through, for the caller to retry.

    A class rather than a @contextmanager: it sits on every statement, and a generator-based
    one costs several times as much to enter and leave."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, asyncpg.UniqueViolationError):
            raise NameTaken from exc
        if isinstance(exc, BUSY_ERRORS):
            raise DatabaseBusy(type(exc).__name__) from exc
        if isinstance(exc, CONNECTION_ERRORS):
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc


_database_errors = _DatabaseErrors()


# A statement that timed out on the client's side or was cancelled: the server is silent or the
# request is being cut. asyncpg's next use of that connection (a ROLLBACK, the reset on release,
# a graceful close) would first wait for the server to confirm the cancellation, without a
# bound (asyncpg/protocol/protocol.pyx awaits `cancel_waiter` before any timeout applies).
ABANDON = (TimeoutError, asyncio.CancelledError)


class _Lease:
    """A connection from the pool, with every wait on the way in and out bounded.

    - The acquire, by the acquire timeout, when every connection is leased: it then waits for
      one to come back (_Leases bounds those waits). While fewer than the pool's size are
      leased, a holder is free and no wait needs a bound: asyncpg hands over its connection, or
      connects it within the connect timeout (the pool's `timeout`) and runs the init's
      statements within the command timeout (asyncpg/pool.py PoolConnectionHolder.connect).
      The store counts its leases itself: asyncpg's get_idle_size() asks every holder, a Python
      call each, on every statement.
    - The release, by an explicit timeout: asyncpg's default is the acquire's, here None
      (asyncpg/pool.py Pool.release), which let a release wait on a silent server forever.
    - A connection abandoned mid-statement (ABANDON) is terminated rather than released.

    A failed release does not fail the operation, which is done: asyncpg has then terminated
    the connection, and the pool connects a new one when it needs it."""

    __slots__ = ("_connection", "_store")

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def __aenter__(self) -> asyncpg.Connection:
        store, leases = self._store, self._store._leases
        free = leases.taken < leases.size
        leases.taken += 1
        try:
            if free:
                self._connection: asyncpg.Connection = await store._pool.acquire()
            else:
                self._connection = await self._wait_for_one(leases)
        except BaseException:
            leases.taken -= 1
            raise
        return self._connection

    async def _wait_for_one(self, leases: _Leases) -> asyncpg.Connection:
        """A connection from a full pool, or TimeoutError past the acquire timeout. asyncpg's
        acquire may be cancelled anywhere (it leaves the pool as it was), as asyncio.timeout
        does to it; a cancellation from elsewhere meanwhile is passed on, as there."""
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        wait = leases.bound(task)
        try:
            connection: asyncpg.Connection = await self._store._pool.acquire()
            return connection
        except asyncio.CancelledError:
            if wait.expired and task.uncancel() <= cancelling:
                raise TimeoutError from None
            raise
        finally:
            wait.done = True

    async def __aexit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        store = self._store
        if isinstance(exc, ABANDON):
            self._connection.terminate()
        try:
            with contextlib.suppress(Exception):
                await store._pool.release(self._connection, timeout=store._release)
        finally:
            store._leases.taken -= 1


@dataclass(slots=True)
class _Wait:
    task: asyncio.Task[Any]
    deadline: float  # the loop's time
    done: bool = False
    expired: bool = False


class _Leases:
    """How many of the pool's connections are leased, and the leases waiting for one.

    One per pool: a store bound to a transaction (PostgresStore._in, a copy) shares it. Every
    wait for a connection from a full pool lasts at most the acquire timeout, so they expire in
    the order they began: one timer between them, armed for the oldest, bounds them all. A timer
    per wait (asyncio.timeout) is a libuv timer set and cancelled under uvloop, about 5 us, and
    under load the pool is full for most writes."""

    __slots__ = ("_seconds", "_timer", "_waits", "size", "taken")

    def __init__(self, size: int, seconds: float) -> None:
        self.size = size
        self.taken = 0
        self._seconds = seconds
        self._waits: deque[_Wait] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def bound(self, task: asyncio.Task[Any]) -> _Wait:
        """Cancel `task` unless its wait is done within the acquire timeout."""
        while self._waits and self._waits[0].done:
            self._waits.popleft()
        loop = asyncio.get_running_loop()
        wait = _Wait(task, loop.time() + self._seconds)
        self._waits.append(wait)
        if self._timer is None:
            self._timer = loop.call_at(wait.deadline, self._expire)
        return wait

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._waits and (self._waits[0].done or self._waits[0].deadline <= now):
            wait = self._waits.popleft()
            if not wait.done:
                wait.expired = True
                wait.task.cancel()
        self._timer = loop.call_at(self._waits[0].deadline, self._expire) if self._waits else None

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _milliseconds(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, timeouts: Timeouts = Timeouts()) -> None:  # noqa: B008
        self._pool = pool
        self._leases = _Leases(pool.get_max_size(), timeouts.acquire)
        self._acquire = timeouts.acquire
        # The reset on release only rolls back a transaction left open: as long as an acquire.
        self._release = timeouts.acquire
        self._client_timeout = timeouts.statement + CLIENT_GRACE_SECONDS
        self._purge = idempotent_write.PurgeClock()
        # The connection of the idempotent write's transaction this store runs in, if any: its
        # statements run there, each in a savepoint, so one the database refuses (a taken name)
        # leaves the transaction usable for storing the response.
        self._bound: asyncpg.Connection | None = None

    def _in(self, connection: asyncpg.Connection) -> PostgresStore:
        bound = copy.copy(self)
        bound._bound = connection
        return bound

    @classmethod
    async def connect(
        cls,
        url: str,
        pool_size: int,
        password: Callable[[], str] | None = None,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 (immutable)
    ) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(
                url,
                password=password,
                min_size=0,  # start (and answer /livez) even while the database is down
                max_size=pool_size,
                init=_init_connection,
                reset=_keep_session,
                timeout=timeouts.acquire,  # to connect: TCP, TLS, authentication, startup
                # Statements asyncpg sends on its own (BEGIN, COMMIT, ROLLBACK, savepoints, the
                # type introspection of _init_connection) and have no timeout= of their own.
                command_timeout=timeouts.statement + CLIENT_GRACE_SECONDS,
                server_settings={
                    "application_name": "registro",
                    "statement_timeout": _milliseconds(timeouts.statement),
                    "lock_timeout": _milliseconds(timeouts.lock),
                },
            )
        except BUSY_ERRORS as exc:
            raise DatabaseBusy(f"no connection within {timeouts.acquire}s") from exc
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(str(exc)) from exc
        return cls(pool, timeouts)

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        if self._bound is not None:
            return await self._fetch_in(self._bound, query, *args)
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                with _database_errors:
                    async with _Lease(self) as connection:
                        rows: list[asyncpg.Record] = await connection.fetch(
                            query, *args, timeout=self._client_timeout
                        )
                        return rows
            except asyncpg.DeadlockDetectedError as exc:
                if attempt == DEADLOCK_RETRIES:
                    raise DatabaseBusy("deadlock, retries exhausted") from exc
        raise AssertionError("unreachable")

    async def _fetch_in(
        self, connection: asyncpg.Connection, query: str, *args: Any
    ) -> list[asyncpg.Record]:
        """A statement of an idempotent write, in its transaction. A deadlock is left for once()
        to retry: it rolled back the whole transaction, not just this statement."""
        with _database_errors:
            async with connection.transaction():  # a savepoint
                try:
                    rows: list[asyncpg.Record] = await connection.fetch(
                        query, *args, timeout=self._client_timeout
                    )
                except ABANDON:
                    connection.terminate()  # before the savepoint's rollback waits on it
                    raise
                return rows

    async def once(self, request: IdempotentRequest, write: Write) -> Outcome:
        return await idempotent_write.once(self, self._purge, request, write)

    async def purge_expired(self, cutoff: datetime, batch: int) -> int:
        count: int = (await self._fetch(PURGE_KEYS, cutoff, batch))[0][0]
        return count

    async def in_transaction(self, work: Callable[[Transaction], Awaitable[Outcome]]) -> Outcome:
        """Retried whole when it lost a deadlock (which rolled it back)."""
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                with _database_errors:
                    async with _Lease(self) as connection, connection.transaction():
                        try:
                            return await work(_PostgresTransaction(self, connection))
                        except ABANDON:
                            connection.terminate()  # before the rollback waits on it
                            raise
            except asyncpg.DeadlockDetectedError as exc:
                if attempt == DEADLOCK_RETRIES:
                    raise DatabaseBusy("deadlock, retries exhausted") from exc
        raise AssertionError("unreachable")

    async def _one(self, query: str, *args: Any) -> Record | None:
        rows = await self._fetch(query, *args)
        return Record(rows[0][0], rows[0][1]) if rows else None

    async def get(self, record_id: int) -> Record | None:
        return await self._one(GET, record_id)

    async def page(self, after: int, limit: int) -> list[Record]:
        return [Record(row[0], row[1]) for row in await self._fetch(PAGE, after, limit)]

    async def create(self, name: str, actor: Actor) -> Record | None:
        return await self._one(CREATE, name, *_actor(actor))

    async def rename(self, record_id: int, name: str, actor: Actor) -> Record | None:
        return await self._one(RENAME, name, *_actor(actor), record_id)

    async def delete(self, record_id: int, actor: Actor) -> Record | None:
        return await self._one(DELETE, record_id, *_actor(actor))

    async def audit_page(self, before: int | None, limit: int) -> list[AuditEntry]:
        rows = await self._fetch(AUDIT_PAGE, before, limit)
        return [AuditEntry(**dict(row)) for row in rows]

    async def add_key(self, key: ApiKey) -> None:
        await self._fetch(keys.ADD, *keys.parameters(key))

    async def keys(self) -> list[ApiKey]:
        return [keys.api_key(row) for row in await self._fetch(keys.ALL)]

    async def find_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetch(keys.FIND, key_id)
        return keys.api_key(rows[0]) if rows else None

    async def revoke_key(self, name: str) -> bool:
        return bool(await self._fetch(keys.REVOKE, name, datetime.now(UTC)))

    async def schema_revision(self) -> str | None:
        try:
            rows = await self._fetch("SELECT version_num FROM alembic_version")
        except asyncpg.UndefinedTableError:
            return None
        return rows[0][0] if rows else None

    def storage_full(self) -> bool:
        return False  # the server's disk: its errors say so (class 53, answered 503)

    def pool_usage(self) -> tuple[int, int]:
        idle = self._pool.get_idle_size()
        return self._pool.get_size() - idle, idle

    async def close(self) -> None:
        """Gracefully within the acquire timeout; past it asyncpg terminates every connection
        (asyncpg/pool.py Pool.close: any error, cancellation included, ends in terminate())."""
        self._leases.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._acquire):
                await self._pool.close()


class _PostgresTransaction:
    __slots__ = ("_connection", "_timeout", "store")

    def __init__(self, store: PostgresStore, connection: asyncpg.Connection) -> None:
        self._connection = connection
        self._timeout = store._client_timeout
        self.store = store._in(connection)

    async def claim(self, request: IdempotentRequest, cutoff: datetime) -> bool:
        claim = (request.actor, request.key, request.fingerprint, datetime.now(UTC), cutoff)
        return (
            await self._connection.fetchval(idempotent_write.CLAIM, *claim, timeout=self._timeout)
            is not None
        )

    async def used(self, request: IdempotentRequest) -> tuple[str, int | None, str | None]:
        row = await self._connection.fetchrow(
            idempotent_write.USED, request.actor, request.key, timeout=self._timeout
        )
        return row[0], row[1], row[2]

    async def complete(self, request: IdempotentRequest, response: StoredResponse) -> None:
        await self._connection.execute(
            idempotent_write.COMPLETE,
            request.actor,
            request.key,
            response.status,
            response.body.decode(),
            timeout=self._timeout,
        )
