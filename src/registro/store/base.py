"""What the rest of the service needs from a database, whichever one it is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from registro.store.idempotent_write import IdempotentRequest, Outcome, Write


class NameTaken(Exception):
    """The unique constraint refused a name that another row already has."""


class DatabaseUnavailable(Exception):
    """The database could not be reached or lost the connection mid-request."""


class DatabaseBusy(DatabaseUnavailable):
    """The database is up but did not answer in time: a lock, a slow statement, a full pool."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long one operation may wait, so that a locked table or a full pool costs a bounded
    time and a 503 rather than a hung request (seconds)."""

    statement: float = 5.0
    lock: float = 2.0
    acquire: float = 2.0


@dataclass(frozen=True, slots=True)
class Record:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change, for the audit trail: the request id is the service's own; the
    caller's X-Request-ID, when it sent a plain one, is kept beside it, and so is the id of the
    trace that recorded the request, when one did."""

    name: str
    request_id: str | None
    client: str | None
    caller_request_id: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    record_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    client: str | None
    caller_request_id: str | None = None
    trace_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    key_id: str
    secret_hash: str
    scopes: frozenset[str]
    created_at: datetime
    revoked_at: datetime | None


class Store(Protocol):
    """Every write records its audit entry in the same transaction as the change."""

    async def get(self, record_id: int) -> Record | None: ...
    async def page(self, after: int, limit: int) -> list[Record]: ...
    async def create(self, name: str, actor: Actor) -> Record | None:
        """The new record, or None when the name is taken."""

    async def rename(self, record_id: int, name: str, actor: Actor) -> Record | None:
        """The renamed record, None when absent; raises NameTaken. A rename to the name the
        record already has changes nothing, so it writes no audit entry."""

    async def delete(self, record_id: int, actor: Actor) -> Record | None: ...
    async def audit_page(self, before: int | None, limit: int) -> list[AuditEntry]: ...

    async def once(self, request: IdempotentRequest, write: Write) -> Outcome:
        """`write` (which calls create, rename or delete) run in one transaction with the claim
        of the caller's key and the storing of its response; or, for a key already used by the
        same request, the stored response and no write. Raises KeyReused for another request."""

    async def add_key(self, key: ApiKey) -> None:
        """Raises NameTaken when a key of that name exists."""

    async def keys(self) -> list[ApiKey]: ...
    async def find_key(self, key_id: str) -> ApiKey | None: ...
    async def revoke_key(self, name: str) -> bool: ...

    async def schema_revision(self) -> str | None:
        """The migration the database is at; None when it was never migrated."""

    def storage_full(self) -> bool:
        """The database's own storage has no room for writes (SQLite's file system)."""

    def pool_usage(self) -> tuple[int, int]:
        """(connections in use, idle connections)."""

    async def close(self) -> None: ...
