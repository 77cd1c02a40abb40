"""The pool hands connections back without asyncpg's reset query (store/postgres.py
_keep_session), which is only right while the store leaves no session state behind.

asyncpg documents what its default reset undoes (Connection.reset / get_reset_query: advisory
locks, cursors, LISTEN, session settings; asyncpg/connection.py) and that a custom `reset` of
create_pool replaces it, an open transaction still being rolled back (asyncpg/pool.py,
PoolConnectionHolder.release). Every HTTP operation here runs on one pooled connection, which
is then checked for each of those.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.auth import new_key
from registro.settings import load_settings
from registro.store.postgres import PostgresStore
from tests.conftest import new_postgres_database

pytestmark = pytest.mark.postgres

SESSION_STATE = """
    SELECT
        (SELECT count(*) FROM pg_settings WHERE source = 'session') AS settings,
        (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())
            AS advisory_locks,
        (SELECT count(*) FROM pg_cursors WHERE name <> '') AS cursors,
        (SELECT count(*) FROM pg_listening_channels()) AS listening
"""
CLEAN = {"settings": 0, "advisory_locks": 0, "cursors": 0, "listening": 0}


@pytest.fixture
async def app(postgres_server: str, postgres_template: str) -> AsyncIterator[Any]:
    """The service, started, on a new database with a pool of one connection."""
    url = new_postgres_database(postgres_server, postgres_template)
    service = create_app(load_settings(env="dev", database_url=url, db_pool_size=1))
    async with LifespanManager(service):
        yield service


def store_of(app: Any) -> PostgresStore:
    """The store, from the service inside the middleware stack."""
    while not hasattr(app, "shared"):
        app = app.app
    store: PostgresStore = app.shared.store
    return store


def pool_of(app: Any) -> asyncpg.Pool:
    return store_of(app)._pool


async def session_state(pool: asyncpg.Pool) -> dict[str, int]:
    async with pool.acquire() as connection:
        assert not connection.is_in_transaction()
        return dict(await connection.fetchrow(SESSION_STATE))


async def test_every_operation_leaves_the_pooled_connection_as_it_found_it(app: Any) -> None:
    pool = pool_of(app)
    token, key = new_key("session-check", frozenset({"read", "write", "admin"}))
    await store_of(app).add_key(key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://registro.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as api:
        first = (await api.post("/data", json={"name": "one"})).json()
        again = {"Idempotency-Key": "k-1"}
        assert (await api.post("/data", json={"name": "two"}, headers=again)).status_code == 200
        replay = await api.post("/data", json={"name": "two"}, headers=again)
        assert replay.headers["idempotent-replayed"] == "true"
        taken = await api.post("/data", json={"name": "one"}, headers={"Idempotency-Key": "k-2"})
        assert taken.status_code == 409  # refused inside the idempotent write's transaction
        assert (await api.put(f"/data/{first['id']}", json={"name": "uno"})).status_code == 200
        assert (await api.get(f"/data/{first['id']}")).status_code == 200
        assert (await api.get("/data", params={"limit": 10})).status_code == 200
        assert (await api.get("/audit")).status_code == 200
        assert (await api.delete(f"/data/{first['id']}")).status_code == 200
        assert (await api.get("/readyz")).status_code == 200
    assert pool.get_max_size() == 1  # so every request above used the connection checked
    assert await session_state(pool) == CLEAN


async def test_the_check_sees_what_a_reset_would_have_undone(app: Any) -> None:
    """Without this the test above could pass by not looking."""
    pool = pool_of(app)
    async with pool.acquire() as connection:
        await connection.execute("SET work_mem = '1MB'")
        await connection.execute("SELECT pg_advisory_lock(1)")
        await connection.execute("LISTEN registro")
    assert await session_state(pool) == {
        "settings": 1,
        "advisory_locks": 1,
        "cursors": 0,
        "listening": 1,
    }
