"""A database that stops answering costs each request a bounded wait and a 503, never a hang.

A real PostgreSQL behind tests/support/silent.py: paused, it neither answers nor refuses, as a
server whose processes are stopped (SIGSTOP) or one behind a network partition.

Why this hung (asyncpg 0.32, github.com/MagicStack/asyncpg, asyncpg/pool.py): `Pool._acquire`
records the acquire's timeout on the connection's holder (`ch._timeout = timeout`), and
`Pool.release(connection, timeout=None)` falls back to it; `PoolConnectionHolder.release` then
waits for a cancelled query's cancellation (`_wait_for_cancellation`) and resets the connection
under that budget, so after an `acquire(timeout=None)` it waits for the silent server without end.
The next statement on such a connection waits too: asyncpg/protocol/protocol.pyx awaits
`cancel_waiter` before applying any timeout, which is what a transaction's ROLLBACK on exit
(asyncpg/transaction.py `Transaction.__aexit__`) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.settings import load_settings
from tests.conftest import new_postgres_database
from tests.support.silent import SilentProxy, silent_proxy

pytestmark = pytest.mark.postgres

STATEMENT_TIMEOUT = 1.0
ACQUIRE_TIMEOUT = 0.5
# The client's own statement bound is the statement timeout plus a second's grace
# (store/postgres.py CLIENT_GRACE_SECONDS); then waiting for a connection, and a loaded machine.
BOUND = ACQUIRE_TIMEOUT + STATEMENT_TIMEOUT + 1.0 + ACQUIRE_TIMEOUT + 1.5
READY_BOUND = 2.0 + 1.5  # api/health.py READY_CHECK_TIMEOUT, and slack
GIVE_UP = 20.0  # far past every bound: a hung request fails the test instead of hanging it


@pytest.fixture
async def proxied(
    postgres_server: str, postgres_template: str
) -> AsyncIterator[tuple[SilentProxy, httpx.AsyncClient]]:
    url = new_postgres_database(postgres_server, postgres_template)
    async with silent_proxy(url) as (proxy, through_proxy):
        settings = load_settings(
            env="dev",
            database_url=through_proxy,
            db_pool_size=2,
            db_lock_timeout_seconds=0.5,
            db_statement_timeout_seconds=STATEMENT_TIMEOUT,
            db_acquire_timeout_seconds=ACQUIRE_TIMEOUT,
        )
        app = create_app(settings)
        async with LifespanManager(app, shutdown_timeout=GIVE_UP):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://registro.test"
            ) as client:
                try:
                    yield proxy, client
                finally:
                    proxy.resume()


async def _timed(
    client: httpx.AsyncClient, method: str, path: str, **kw: object
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.request(method, path, **kw)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def _requests(client: httpx.AsyncClient, record_id: int) -> list[object]:
    return [
        _timed(client, "GET", f"/data/{record_id}"),
        _timed(client, "GET", "/data"),
        _timed(client, "PUT", f"/data/{record_id}", json={"name": "renamed"}),
        _timed(client, "POST", "/data", json={"name": "keyed"}, headers={"Idempotency-Key": "k"}),
        _timed(client, "DELETE", f"/data/{record_id}"),
    ]


async def test_a_silent_database_is_a_503_within_the_bound_for_every_request_and_readyz(
    proxied: tuple[SilentProxy, httpx.AsyncClient],
) -> None:
    proxy, client = proxied
    created = await client.post("/data", json={"name": "before"})
    assert created.status_code == 200
    record_id = created.json()["id"]
    assert (await client.get("/readyz")).status_code == 200

    proxy.pause()
    # Twice: the first round finds open connections that go silent mid-statement, the second
    # finds the pool emptied by the first and connects anew to a server that does not answer.
    for _ in range(2):
        results = await asyncio.wait_for(
            asyncio.gather(*_requests(client, record_id), _timed(client, "GET", "/readyz")),
            GIVE_UP,
        )
        *requests, (readyz, readyz_seconds) = results
        for response, seconds in requests:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert seconds < BOUND, f"{response.request.method} took {seconds:.2f}s"
        assert readyz.status_code == 503
        assert readyz.json()["message"] in {"database busy", "database unreachable"}
        assert readyz_seconds < READY_BOUND, f"/readyz took {readyz_seconds:.2f}s"

    proxy.resume()
    # The pool recovers on its own once the server answers again.
    deadline = time.monotonic() + 10
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "not ready again after the database came back"
        await asyncio.sleep(0.1)
    again = await client.get(f"/data/{record_id}")
    assert again.status_code in {200, 404}


async def test_shutting_down_while_the_database_is_silent_is_bounded(
    postgres_server: str, postgres_template: str
) -> None:
    url = new_postgres_database(postgres_server, postgres_template)
    async with silent_proxy(url) as (proxy, through_proxy):
        settings = load_settings(
            env="dev",
            database_url=through_proxy,
            db_pool_size=2,
            db_statement_timeout_seconds=STATEMENT_TIMEOUT,
            db_lock_timeout_seconds=0.5,
            db_acquire_timeout_seconds=ACQUIRE_TIMEOUT,
        )
        app = create_app(settings)
        manager = LifespanManager(app, shutdown_timeout=GIVE_UP)
        await manager.__aenter__()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://registro.test"
        ) as client:
            assert (await client.get("/data")).status_code == 200
        proxy.pause()
        started = time.monotonic()
        with contextlib.suppress(Exception):
            await manager.__aexit__(None, None, None)
        seconds = time.monotonic() - started
        proxy.resume()
    assert seconds < BOUND, f"closing the pool took {seconds:.2f}s"
