"""Fixtures shared by every tier: databases (SQLite and a real PostgreSQL) and app clients."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.auth import new_key
from registro.settings import load_settings
from registro.store import open_store
from registro.store.migrate import upgrade
from tests.support.postgres import PostgresMissing, running_postgres

IN_CI = os.environ.get("CI") == "true"
_database_numbers = itertools.count()

T = TypeVar("T")
ClientFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the session. Missing binaries fail in CI, never skip."""
    try:
        with running_postgres() as url:
            yield url
    except PostgresMissing as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(str(exc))


def _database(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


def in_thread(function: Callable[..., T], *args: object) -> T:
    """Run blocking set-up (which may start its own event loop) away from the test loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


async def _create_database(server_url: str, name: str, template: str | None) -> None:
    connection = await asyncpg.connect(server_url)
    try:
        suffix = f" TEMPLATE {template}" if template else ""
        await connection.execute(f"CREATE DATABASE {name}{suffix}")
    finally:
        await connection.close()


def new_postgres_database(server_url: str, template: str | None = None) -> str:
    name = f"test_{next(_database_numbers)}"
    in_thread(asyncio.run, _create_database(server_url, name, template))
    return _database(server_url, name)


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    """A migrated database that each test copies (CREATE DATABASE ... TEMPLATE is fast)."""
    in_thread(asyncio.run, _create_database(postgres_server, "registro_template", None))
    in_thread(upgrade, _database(postgres_server, "registro_template"))
    return "registro_template"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/registro.db"
        in_thread(upgrade, url)
        return url
    server = request.getfixturevalue("postgres_server")
    template = request.getfixturevalue("postgres_template")
    return new_postgres_database(server, template)


@pytest.fixture
async def make_client(database_url: str) -> AsyncIterator[ClientFactory]:
    """Start the app in-process with settings overrides; yield an httpx client for it."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(**overrides: object) -> httpx.AsyncClient:
            settings = load_settings(**{"database_url": database_url, "env": "dev", **overrides})
            app = create_app(settings)
            await stack.enter_async_context(LifespanManager(app))
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 51000))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://registro.test")
            )

        yield factory


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    """The service as in dev: no API keys needed except for /audit."""
    return await make_client()


async def add_key(database_url: str, name: str, *scopes: str) -> str:
    """Create an API key in a database; return the bearer token."""
    token, key = new_key(name, frozenset(scopes))
    store = await open_store(database_url, 1)
    try:
        await store.add_key(key)
    finally:
        await store.close()
    return token


@pytest.fixture
def make_key(database_url: str) -> Callable[..., Awaitable[str]]:
    """Create an API key in the test database; return the bearer token."""

    async def factory(name: str, *scopes: str) -> str:
        return await add_key(database_url, name, *scopes)

    return factory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
