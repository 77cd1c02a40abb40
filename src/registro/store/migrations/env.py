"""Alembic environment: runs migrations over the async drivers the service uses.

On PostgreSQL a session advisory lock serialises concurrent `registro migrate` runs (several pods
or containers starting at once); the second waits, then finds the schema at head.
"""

import asyncio
from collections.abc import Callable

import asyncpg
from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from registro.settings import is_postgres
from registro.store.base import DatabaseUnavailable
from registro.store.migrate import MIGRATION_LOCK_ID, schema_state
from registro.store.postgres import CONNECTION_ERRORS
from registro.store.schema import metadata
from registro.store.urls import password_reader, sqlalchemy_url


def run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    try:
        current = context.get_context().get_current_revision()
        if schema_state(current) == "ahead":
            context.config.attributes["ahead_at"] = current  # a later release's: not ours to undo
            return
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if postgres:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
            connection.commit()


def engine_for(url: str, password: Callable[[], str] | None) -> AsyncEngine:
    """On PostgreSQL, asyncpg reads the URL itself, as for the service's own connections: query
    parameters such as sslmode or target_session_attrs mean the same to both."""
    if not is_postgres(url):
        return create_async_engine(sqlalchemy_url(url))

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(url, password=password)

    return create_async_engine("postgresql+asyncpg://", async_creator=connect)


async def main() -> None:
    url = context.config.get_main_option("database_url") or ""
    engine = engine_for(url, password_reader(context.config.attributes.get("password_file")))
    try:
        try:
            connection = await engine.connect()
        except (*CONNECTION_ERRORS, DBAPIError) as exc:  # connecting only: not migration errors
            raise DatabaseUnavailable(str(getattr(exc, "orig", None) or exc)) from exc
        try:
            await connection.run_sync(run)
        finally:
            await connection.close()
    finally:
        await engine.dispose()


asyncio.run(main())
