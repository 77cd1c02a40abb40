"""A locked table or a full pool costs a bounded wait and a 503, never a hung request.

On a real PostgreSQL: another session holds `LOCK TABLE records` (as a migration or a DBA would)
for longer than the service's timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.settings import load_settings
from registro.store.base import DatabaseBusy, Timeouts
from registro.store.postgres import PostgresStore
from tests.conftest import new_postgres_database

pytestmark = pytest.mark.postgres

LOCK_TIMEOUT = 0.5
STATEMENT_TIMEOUT = 1.0
ACQUIRE_TIMEOUT = 0.5
# What one request may take at most: waiting for a connection, then for the lock, plus slack
# for a loaded machine. The lock is held far longer.
BOUND = ACQUIRE_TIMEOUT + LOCK_TIMEOUT + 1.5
LOCK_HELD = 3 * BOUND


@pytest.fixture
def pg_url(postgres_server: str, postgres_template: str) -> str:
    return new_postgres_database(postgres_server, postgres_template)


@contextlib.asynccontextmanager
async def service(
    url: str, pool_size: int, lock_timeout: float = LOCK_TIMEOUT
) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        env="dev",
        database_url=url,
        db_pool_size=pool_size,
        db_lock_timeout_seconds=lock_timeout,
        db_statement_timeout_seconds=STATEMENT_TIMEOUT,
        db_acquire_timeout_seconds=ACQUIRE_TIMEOUT,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registro.test") as c:
            yield c


@contextlib.asynccontextmanager
async def records_locked(url: str) -> AsyncIterator[None]:
    """Hold an exclusive lock on `records` in another session until the block ends."""
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await connection.execute("LOCK TABLE records IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await connection.close()


async def _timed(
    client: httpx.AsyncClient, method: str, path: str, **kw: object
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.request(method, path, **kw)  # type: ignore[arg-type]
    return response, time.monotonic() - started


async def test_a_locked_table_is_a_503_within_the_bound_and_livez_is_unaffected(
    pg_url: str,
) -> None:
    async with service(pg_url, pool_size=2) as client:
        created = await client.post("/data", json={"name": "locked"})
        assert created.status_code == 200
        async with records_locked(pg_url):
            # More requests than connections: some wait for the lock, the rest for the pool.
            calls = [
                _timed(client, "GET", f"/data/{created.json()['id']}"),
                _timed(client, "GET", "/data"),
                _timed(client, "PUT", "/data/1", json={"name": "other"}),
                _timed(client, "POST", "/data", json={"name": "new"}),
                _timed(client, "DELETE", "/data/1"),
            ]
            pending = asyncio.gather(*calls)
            await asyncio.sleep(0.05)
            livez, livez_seconds = await _timed(client, "GET", "/livez")
            # Without timeouts the requests would wait for the lock as long as it is held.
            results = await asyncio.wait_for(pending, LOCK_HELD)
    assert livez.status_code == 200 and livez_seconds < 0.5
    for response, seconds in results:
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json() == {"message": "Database busy, try again"}
        assert seconds < BOUND, f"{response.request.method} took {seconds:.2f}s"


async def test_readyz_tells_a_full_pool_from_an_unreachable_database(pg_url: str) -> None:
    async with (
        service(pg_url, pool_size=1, lock_timeout=STATEMENT_TIMEOUT) as client,
        records_locked(pg_url),
    ):
        stuck = asyncio.create_task(client.get("/data"))  # holds the only connection
        await asyncio.sleep(0.1)
        readyz = await client.get("/readyz")
        assert (await asyncio.wait_for(stuck, LOCK_HELD)).status_code == 503
    assert readyz.status_code == 503
    assert readyz.json() == {"message": "database busy"}


async def test_a_slow_statement_is_cancelled_by_the_server(pg_url: str) -> None:
    async with service(pg_url, pool_size=1) as client:
        connection = await asyncpg.connect(pg_url)
        try:
            # A function the service calls on each read makes every read slow.
            await connection.execute(
                "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN PERFORM pg_sleep(10); RETURN NEW; END $$"
            )
            await connection.execute(
                "CREATE TRIGGER slow BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION slow()"
            )
        finally:
            await connection.close()
        response, seconds = await asyncio.wait_for(
            _timed(client, "POST", "/data", json={"name": "slow"}), LOCK_HELD
        )
        assert response.status_code == 503
        assert response.json() == {"message": "Database busy, try again"}
        assert STATEMENT_TIMEOUT <= seconds < STATEMENT_TIMEOUT + 1.5
        assert (await client.get("/readyz")).json() == {"message": "ready"}


async def test_a_full_pool_bounds_every_wait_and_is_usable_again(pg_url: str) -> None:
    """Each lease waits at most the acquire timeout for a connection (store/postgres.py _Lease),
    and every connection comes back to the pool after its statement was cancelled."""
    timeouts = Timeouts(statement=STATEMENT_TIMEOUT, lock=LOCK_TIMEOUT, acquire=ACQUIRE_TIMEOUT)
    store = await PostgresStore.connect(pg_url, 1, timeouts=timeouts)
    try:
        async with records_locked(pg_url):
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(store.get(1) for _ in range(3)), return_exceptions=True),
                LOCK_HELD,
            )
        assert [type(o) for o in outcomes] == [DatabaseBusy] * 3
        assert await store.get(1) is None  # the pool is usable again
        assert store.pool_usage()[0] == 0
    finally:
        await store.close()


async def test_leases_cut_while_waiting_or_running_give_their_count_back(pg_url: str) -> None:
    """The store counts its own leases (store/postgres.py _Lease) and waits without a timer
    while the count says a connection is free. A request cut while it waits for the pool or
    runs its statement must give its count back, once: a count too high puts a timer on every
    lease, one too low lets a lease wait on a full pool without a bound."""
    timeouts = Timeouts(statement=STATEMENT_TIMEOUT, lock=LOCK_TIMEOUT, acquire=ACQUIRE_TIMEOUT)
    store = await PostgresStore.connect(pg_url, 1, timeouts=timeouts)
    try:
        async with records_locked(pg_url):
            requests = [asyncio.create_task(store.get(1)) for _ in range(3)]
            await asyncio.sleep(LOCK_TIMEOUT / 2)  # one runs its statement, two wait for it
            for request in requests:
                request.cancel()
            outcomes = await asyncio.gather(*requests, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
        assert store._leases.taken == 0
        assert await store.get(1) is None  # the pool is usable again
        assert store.pool_usage()[0] == 0
    finally:
        await store.close()


async def test_waits_on_a_full_pool_end_at_the_acquire_timeout_in_the_order_they_began(
    pg_url: str,
) -> None:
    """The waits for a connection share one timer (store/postgres.py _Leases), armed for the
    oldest: each must still end at its own deadline, as asyncio.timeout would end it, while the
    one connection stays busy far longer. An expired wait is cancelled inside asyncpg's acquire,
    which puts the holder back in the pool's queue when cancelled (asyncpg/pool.py
    Pool._acquire, _acquire_impl): the pool is usable again after."""
    timeouts = Timeouts(statement=LOCK_HELD, lock=LOCK_HELD, acquire=ACQUIRE_TIMEOUT)
    store = await PostgresStore.connect(pg_url, 1, timeouts=timeouts)
    loop = asyncio.get_running_loop()
    ended: list[float] = []

    async def waiter(delay: float) -> BaseException | None:
        await asyncio.sleep(delay)
        began = loop.time()
        try:
            await store.get(1)
        except DatabaseBusy as exc:
            ended.append(loop.time() - began)
            return exc
        return None

    try:
        async with records_locked(pg_url):
            holder = asyncio.create_task(store.get(1))  # takes the connection, waits on the lock
            await asyncio.sleep(0.1)
            outcomes = await asyncio.gather(*(waiter(d) for d in (0.0, 0.15, 0.3)))
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
        assert all(isinstance(o, DatabaseBusy) for o in outcomes), outcomes
        assert all(ACQUIRE_TIMEOUT - 0.01 <= s < ACQUIRE_TIMEOUT + 0.25 for s in ended), ended
        assert store._leases.taken == 0
        assert await store.get(1) is None  # the pool is usable again
    finally:
        await store.close()
