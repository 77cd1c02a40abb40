"""The database: one interface (base.Store), a PostgreSQL and a SQLite implementation."""

from pathlib import Path

from registro.settings import is_postgres
from registro.store.base import (
    Actor,
    ApiKey,
    AuditEntry,
    DatabaseBusy,
    DatabaseUnavailable,
    NameTaken,
    Record,
    Store,
    Timeouts,
)
from registro.store.urls import password_reader, sqlite_path


async def open_store(
    database_url: str,
    pool_size: int = 10,
    password_file: Path | None = None,
    create: bool = True,
    timeouts: Timeouts = Timeouts(),  # noqa: B008 (immutable)
) -> Store:
    """`create=False`: a SQLite file that does not exist is DatabaseUnavailable, not a new file
    (commands that only read, or that need a migrated schema, leave nothing behind)."""
    if is_postgres(database_url):
        from registro.store.postgres import PostgresStore

        return await PostgresStore.connect(
            database_url, pool_size, password_reader(password_file), timeouts
        )
    from registro.store.sqlite import SqliteStore

    return await SqliteStore.connect(sqlite_path(database_url), create, timeouts)


__all__ = [
    "Actor",
    "ApiKey",
    "AuditEntry",
    "DatabaseBusy",
    "DatabaseUnavailable",
    "NameTaken",
    "Record",
    "Store",
    "Timeouts",
    "open_store",
]
