"""SQLite through aiosqlite, for development and tests.

One connection serves the process (SQLite has a single writer anyway); writes run in an explicit
`BEGIN IMMEDIATE` transaction so a change and its audit entry commit together.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

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

CLAIM, USED, COMPLETE, ADD_KEY, ALL_KEYS, FIND_KEY, REVOKE_KEY = map(
    idempotent_write.sqlite_placeholders,
    (
        idempotent_write.CLAIM,
        idempotent_write.USED,
        idempotent_write.COMPLETE,
        keys.ADD,
        keys.ALL,
        keys.FIND,
        keys.REVOKE,
    ),
)
PURGE = """
    DELETE FROM idempotency_keys WHERE rowid IN (
        SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?
    )
"""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _timestamp(value: datetime) -> str:
    """Fixed width, so that comparing the text compares the times."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _doc(record: Record | None) -> str | None:
    return json.dumps({"id": record.id, "name": record.name}) if record else None


def require_directory(path: str) -> None:
    """Refuse a database file whose directory is missing before aiosqlite tries: its failed
    connect leaves a thread that races the event loop's end and prints a traceback."""
    if not Path(path).parent.is_dir():
        raise DatabaseUnavailable(f"no directory for the SQLite database {path}")


def require_file(path: str) -> None:
    if not Path(path).is_file():
        raise DatabaseUnavailable(
            f"no SQLite database at {path} (`registro migrate` or `registro serve` creates it)"
        )


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


# The file system failed the database (full, or an I/O error): answered 503, never 500.
_STORAGE_ERRORS = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR})
# Below this much free space where the database lives, /readyz says not ready: SQLite needs room
# for its WAL and new pages, and a write that finds none fails.
MIN_FREE_BYTES = 1 << 20


def _is_storage_failure(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in _STORAGE_ERRORS


class SqliteStore:
    def __init__(
        self,
        connection: aiosqlite.Connection,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 (immutable)
        directory: Path | None = None,
    ) -> None:
        self._db = connection
        self._directory = directory
        self._lock = asyncio.Lock()
        self._busy = 0
        self._acquire = timeouts.acquire
        self._purge = idempotent_write.PurgeClock()
        # In the idempotent write's transaction (it holds the one connection): run in it.
        self._bound = False

    def _in_transaction(self) -> SqliteStore:
        bound = copy.copy(self)
        bound._bound = True
        return bound

    @classmethod
    async def connect(
        cls,
        path: str,
        create: bool = True,
        timeouts: Timeouts = Timeouts(),  # noqa: B008 (immutable)
    ) -> SqliteStore:
        require_directory(path)
        if not create:
            require_file(path)
        try:
            connection = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"{exc}: {path}") from exc
        connection.row_factory = sqlite3.Row
        await connection.execute("PRAGMA journal_mode=WAL")
        # Another process holding the write lock: wait this long, then "database is locked".
        await connection.execute(f"PRAGMA busy_timeout={round(timeouts.lock * 1000)}")
        return cls(connection, timeouts, Path(path).parent)

    async def _locked(self) -> None:
        """Take the one connection, or DatabaseBusy when other requests hold it too long."""
        try:
            await asyncio.wait_for(self._lock.acquire(), self._acquire)
        except TimeoutError:
            raise DatabaseBusy(f"no connection within {self._acquire}s") from None

    async def _busy_is_503(self, operation: Awaitable[Any]) -> Any:
        try:
            return await operation
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                raise DatabaseBusy(str(exc)) from exc
            if _is_storage_failure(exc):
                raise DatabaseUnavailable(str(exc)) from exc
            raise

    async def _rows(self, query: str, *args: Any) -> list[sqlite3.Row]:
        if self._bound:
            return list(await (await self._db.execute(query, args)).fetchall())
        await self._locked()
        self._busy = 1
        try:
            cursor = await self._busy_is_503(self._db.execute(query, args))
            return list(await cursor.fetchall())
        finally:
            self._busy = 0
            self._lock.release()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        if self._bound:
            yield self._db
            return
        await self._locked()
        self._busy = 1
        try:
            await self._busy_is_503(self._db.execute("BEGIN IMMEDIATE"))
            try:
                yield self._db
            except sqlite3.OperationalError as exc:
                await self._rollback()
                if _is_storage_failure(exc):
                    raise DatabaseUnavailable(str(exc)) from exc
                raise
            except BaseException:
                await self._rollback()
                raise
            else:
                try:
                    await self._busy_is_503(self._db.execute("COMMIT"))
                except BaseException:
                    await self._rollback()
                    raise
        finally:
            self._busy = 0
            self._lock.release()

    async def _rollback(self) -> None:
        if self._db.in_transaction:  # SQLite rolls back itself on some errors (a full disk)
            await self._db.execute("ROLLBACK")

    async def _one(self, db: aiosqlite.Connection, query: str, *args: Any) -> Record | None:
        cursor = await db.execute(query, args)
        row = await cursor.fetchone()
        return Record(row[0], row[1]) if row else None

    async def _audit(
        self,
        db: aiosqlite.Connection,
        action: str,
        record_id: int,
        before: Record | None,
        after: Record | None,
        actor: Actor,
    ) -> None:
        await db.execute(
            "INSERT INTO audit (at, actor, action, record_id, before, after, request_id, client,"
            " caller_request_id, trace_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                _now(),
                actor.name,
                action,
                record_id,
                _doc(before),
                _doc(after),
                actor.request_id,
                actor.client,
                actor.caller_request_id,
                actor.trace_id,
            ),
        )

    async def get(self, record_id: int) -> Record | None:
        rows = await self._rows("SELECT id, name FROM records WHERE id = ?", record_id)
        return Record(rows[0][0], rows[0][1]) if rows else None

    async def page(self, after: int, limit: int) -> list[Record]:
        rows = await self._rows(
            "SELECT id, name FROM records WHERE id > ? ORDER BY id LIMIT ?", after, limit
        )
        return [Record(row[0], row[1]) for row in rows]

    async def create(self, name: str, actor: Actor) -> Record | None:
        async with self._transaction() as db:
            now = _now()
            record = await self._one(
                db,
                "INSERT INTO records (name, created_at, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING RETURNING id, name",
                name,
                now,
                now,
            )
            if record:
                await self._audit(db, "create", record.id, None, record, actor)
            return record

    async def rename(self, record_id: int, name: str, actor: Actor) -> Record | None:
        async with self._transaction() as db:
            old = await self._one(db, "SELECT id, name FROM records WHERE id = ?", record_id)
            if old is None or old.name == name:
                return old
            try:
                record = await self._one(
                    db,
                    "UPDATE records SET name = ?, updated_at = ? WHERE id = ? RETURNING id, name",
                    name,
                    _now(),
                    record_id,
                )
            except sqlite3.IntegrityError as exc:
                raise NameTaken from exc
            await self._audit(db, "update", record_id, old, record, actor)
            return record

    async def delete(self, record_id: int, actor: Actor) -> Record | None:
        async with self._transaction() as db:
            record = await self._one(
                db, "DELETE FROM records WHERE id = ? RETURNING id, name", record_id
            )
            if record:
                await self._audit(db, "delete", record_id, record, None, actor)
            return record

    async def once(self, request: IdempotentRequest, write: Write) -> Outcome:
        return await idempotent_write.once(self, self._purge, request, write)

    async def purge_expired(self, cutoff: datetime, batch: int) -> int:
        async with self._transaction() as db:
            purge = await db.execute(PURGE, (_timestamp(cutoff), batch))
        deleted: int = purge.rowcount
        return deleted

    async def in_transaction(self, work: Callable[[Transaction], Awaitable[Outcome]]) -> Outcome:
        async with self._transaction() as db:
            return await work(_SqliteTransaction(self, db))

    async def audit_page(self, before: int | None, limit: int) -> list[AuditEntry]:
        rows = await self._rows(
            "SELECT id, at, actor, action, record_id, before, after, request_id, client,"
            " caller_request_id, trace_id"
            " FROM audit WHERE ? IS NULL OR id < ? ORDER BY id DESC LIMIT ?",
            before,
            before,
            limit,
        )
        return [
            AuditEntry(
                id=row["id"],
                at=datetime.fromisoformat(row["at"]),
                actor=row["actor"],
                action=row["action"],
                record_id=row["record_id"],
                before=json.loads(row["before"]) if row["before"] else None,
                after=json.loads(row["after"]) if row["after"] else None,
                request_id=row["request_id"],
                client=row["client"],
                caller_request_id=row["caller_request_id"],
                trace_id=row["trace_id"],
            )
            for row in rows
        ]

    async def add_key(self, key: ApiKey) -> None:
        try:
            async with self._transaction() as db:
                await db.execute(ADD_KEY, keys.parameters(key, datetime.isoformat))
        except sqlite3.IntegrityError as exc:
            raise NameTaken from exc

    async def keys(self) -> list[ApiKey]:
        return [keys.api_key(row, datetime.fromisoformat) for row in await self._rows(ALL_KEYS)]

    async def find_key(self, key_id: str) -> ApiKey | None:
        rows = await self._rows(FIND_KEY, key_id)
        return keys.api_key(rows[0], datetime.fromisoformat) if rows else None

    async def revoke_key(self, name: str) -> bool:
        async with self._transaction() as db:
            cursor = await db.execute(REVOKE_KEY, (name, _now()))
            return bool(await cursor.fetchall())

    async def schema_revision(self) -> str | None:
        try:
            rows = await self._rows("SELECT version_num FROM alembic_version")
        except sqlite3.OperationalError:
            return None
        return rows[0][0] if rows else None

    def storage_full(self) -> bool:
        if self._directory is None:
            return False
        stats = os.statvfs(self._directory)
        return stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES

    def pool_usage(self) -> tuple[int, int]:
        return self._busy, 1 - self._busy

    async def close(self) -> None:
        await self._db.close()


class _SqliteTransaction:
    __slots__ = ("_db", "store")

    def __init__(self, store: SqliteStore, db: aiosqlite.Connection) -> None:
        self._db = db
        self.store = store._in_transaction()

    async def claim(self, request: IdempotentRequest, cutoff: datetime) -> bool:
        now = _timestamp(datetime.now(UTC))
        claim = (request.actor, request.key, request.fingerprint, now, _timestamp(cutoff))
        cursor = await self._db.execute(CLAIM, claim)
        return await cursor.fetchone() is not None

    async def used(self, request: IdempotentRequest) -> tuple[str, int | None, str | None]:
        cursor = await self._db.execute(USED, (request.actor, request.key))
        row = await cursor.fetchone()
        assert row is not None  # under the write lock: the conflicting row is there
        return row[0], row[1], row[2]

    async def complete(self, request: IdempotentRequest, response: StoredResponse) -> None:
        body = response.body.decode()
        await self._db.execute(COMPLETE, (request.actor, request.key, response.status, body))
