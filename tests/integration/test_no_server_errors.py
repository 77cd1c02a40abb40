"""No input and no orderly database event is a 500; a real bug is one JSON 500, logged once."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.settings import load_settings
from registro.store.migrate import upgrade
from tests.conftest import ClientFactory, in_thread, new_postgres_database
from tests.support.postgres import PG_BIN, PostgresMissing, _as_server_user, running_postgres

HUGE_ID = "9" * 5000  # Python's int() refuses more than 4300 digits


@contextlib.asynccontextmanager
async def in_process(url: str, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(load_settings(env="dev", database_url=url, **overrides))
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registro.test") as c:
            yield c


async def test_ids_of_any_length_are_422_without_a_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    for method, body in (("GET", None), ("PUT", {"name": "x"}), ("DELETE", None)):
        response = await client.request(method, f"/data/{HUGE_ID}", json=body)
        assert response.status_code == 422, (method, response.text)
        assert response.json()["message"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_bug_is_one_json_500_logged_once(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered and logged here, not re-raised: a re-raised error is logged again by uvicorn
    (and, in process, raised into the client instead of answered)."""
    client = await make_client()
    from registro.api import data

    def broken(record: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(data, "_found", broken)
    response = await client.get("/data/1")
    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in logged] == ["unhandled error"]


async def test_sqlite_locked_by_another_process_is_a_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/registro.db"
    in_thread(upgrade, url)
    other = sqlite3.connect(tmp_path / "registro.db", isolation_level=None)
    try:
        async with in_process(url, db_lock_timeout_seconds=0.2) as client:
            other.execute("BEGIN IMMEDIATE")  # another process writing, for longer than the wait
            started = time.monotonic()
            response = await client.post("/data", json={"name": "blocked"})
            seconds = time.monotonic() - started
            other.execute("ROLLBACK")
            assert (await client.post("/data", json={"name": "free"})).status_code == 200
    finally:
        other.close()
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["message"]
    assert seconds < 2


async def _statuses(client: httpx.AsyncClient, calls: list[tuple[str, str, object]]) -> list[str]:
    async def one(method: str, path: str, body: object) -> str:
        try:
            return str((await client.request(method, path, json=body)).status_code)
        except Exception as exc:  # an error raised through the app instead of answered
            return type(exc).__name__

    return await asyncio.gather(*(one(*call) for call in calls))


@pytest.mark.postgres
async def test_records_renamed_into_each_others_names_never_500(
    postgres_server: str, postgres_template: str
) -> None:
    """Two renames that each take the other's name wait on each other's row: PostgreSQL breaks
    the deadlock by failing one, which must be retried, not answered 500."""
    url = new_postgres_database(postgres_server, postgres_template)
    pairs, rounds = 20, 50  # 2000 swaps
    outcomes: collections.Counter[str] = collections.Counter()
    async with in_process(url, db_pool_size=20) as client:
        ids = [
            (await client.post("/data", json={"name": f"n{i}"})).json()["id"]
            for i in range(2 * pairs)
        ]
        for _ in range(rounds):
            names = {i: (await client.get(f"/data/{i}")).json()["name"] for i in ids}
            calls: list[tuple[str, str, object]] = []
            for a, b in zip(ids[::2], ids[1::2], strict=True):
                calls.append(("PUT", f"/data/{a}", {"name": names[b]}))
                calls.append(("PUT", f"/data/{b}", {"name": names[a]}))
            outcomes.update(await _statuses(client, calls))
    assert sum(outcomes.values()) == 2 * pairs * rounds
    assert set(outcomes) <= {"200", "409"}, outcomes


async def _data_directory(url: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        directory: str = await connection.fetchval("SHOW data_directory")
        return directory
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_a_fast_database_shutdown_under_load_is_503s_never_500s() -> None:
    """`pg_ctl stop -m fast` terminates every session mid-request (AdminShutdown, then closed
    connections, refused connects): all of it is the database's state, answered 503."""
    try:
        server = running_postgres()
        url = server.__enter__()
    except PostgresMissing as exc:
        pytest.skip(str(exc))
    try:
        in_thread(upgrade, url)
        data = await _data_directory(url)
        outcomes: collections.Counter[str] = collections.Counter()
        async with in_process(url, db_pool_size=8) as client:
            stop_at = time.monotonic() + 0.5
            until = stop_at + 1.5

            async def load(worker: int) -> None:
                n = 0
                while time.monotonic() < until:
                    n += 1
                    calls: list[tuple[str, str, object]] = [
                        ("POST", "/data", {"name": f"w{worker}-{n}"}),
                        ("GET", "/data/1", None),
                        ("GET", "/data", None),
                    ]
                    outcomes.update(await _statuses(client, calls))

            loaders = [asyncio.create_task(load(w)) for w in range(8)]
            await asyncio.sleep(stop_at - time.monotonic())
            stop = [str(PG_BIN / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]
            await asyncio.to_thread(subprocess.run, _as_server_user(stop), check=True)
            await asyncio.gather(*loaders)
    finally:
        server.__exit__(None, None, None)
    assert outcomes["200"] > 0 and outcomes["503"] > 0, outcomes
    assert set(outcomes) <= {"200", "404", "503"}, outcomes  # 404: GET /data/1 before a create
