"""Idempotency-Key: a retried write answers what the first one did and writes once, on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from registro.api.idempotency_header import HEADER, REPLAYED, fingerprint
from registro.app import create_app
from registro.settings import load_settings
from registro.store import Actor, DatabaseBusy, Store, Timeouts, open_store
from registro.store.idempotent_write import (
    PURGE_BATCH,
    IdempotentRequest,
    KeyReused,
    StoredResponse,
    sqlite_placeholders,
)
from tests.conftest import ClientFactory, bearer, new_postgres_database
from tests.support.idempotent import write_once

JSON_BODY = {"Content-Type": "application/json"}


def keyed(key: str, **headers: str) -> dict[str, str]:
    return {HEADER: key, **headers}


async def audit_actions(client: httpx.AsyncClient, make_key: Callable[..., Awaitable[str]]) -> list:
    admin = await make_key("auditor", "admin")
    entries = (await client.get("/audit", headers=bearer(admin))).json()
    return [(e["action"], e["record_id"]) for e in entries][::-1]


async def test_a_repeated_post_answers_the_first_response_and_writes_once(
    client: httpx.AsyncClient, make_key: Callable[..., Awaitable[str]]
) -> None:
    key = str(uuid.uuid4())
    first = await client.post("/data", json={"name": "alpha"}, headers=keyed(key))
    again = await client.post("/data", json={"name": "alpha"}, headers=keyed(key))
    assert first.status_code == 200 and REPLAYED not in first.headers
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers[REPLAYED] == "true"
    assert [r["name"] for r in (await client.get("/data")).json()] == ["alpha"]
    assert await audit_actions(client, make_key) == [("create", first.json()["id"])]


async def test_a_retried_delete_and_rename_answer_200_again_not_404(
    client: httpx.AsyncClient, make_key: Callable[..., Awaitable[str]]
) -> None:
    record = (await client.post("/data", json={"name": "a"})).json()
    path = f"/data/{record['id']}"
    renamed = [await client.put(path, json={"name": "b"}, headers=keyed("r1")) for _ in range(2)]
    assert [r.status_code for r in renamed] == [200, 200]
    assert renamed[1].json() == {"id": record["id"], "name": "b"}
    deleted = [await client.delete(path, headers=keyed("d1")) for _ in range(2)]
    assert [(r.status_code, r.headers.get(REPLAYED)) for r in deleted] == [
        (200, None),
        (200, "true"),
    ]
    assert deleted[1].json() == {"message": "Data deleted successfully"}
    assert (await client.delete(path)).status_code == 404  # without the key: the plain answer
    actions = [action for action, _ in await audit_actions(client, make_key)]
    assert actions == ["create", "update", "delete"]


async def test_the_first_answer_is_kept_even_when_it_was_a_refusal(
    client: httpx.AsyncClient,
) -> None:
    """A 409 is what the first attempt answered: its retry says 409 again and writes nothing,
    even once the name is free."""
    taken = (await client.post("/data", json={"name": "taken"})).json()
    refused = await client.post("/data", json={"name": "taken"}, headers=keyed("k"))
    assert refused.status_code == 409
    await client.delete(f"/data/{taken['id']}")
    again = await client.post("/data", json={"name": "taken"}, headers=keyed("k"))
    assert (again.status_code, again.json(), again.headers[REPLAYED]) == (
        409,
        {"message": "Data already exists"},
        "true",
    )
    assert (await client.get("/data")).json() == []


@pytest.mark.parametrize(
    "second",
    [
        ("POST", "/data", {"name": "other"}),  # another body
        ("PUT", "/data/1", {"name": "alpha"}),  # another method and path
    ],
)
async def test_the_key_with_another_request_is_422_and_writes_nothing(
    client: httpx.AsyncClient, second: tuple[str, str, dict[str, str]]
) -> None:
    await client.post("/data", json={"name": "alpha"}, headers=keyed("k"))
    method, path, body = second
    response = await client.request(method, path, json=body, headers=keyed("k"))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == f"header.{HEADER}"
    assert "different request" in response.json()["message"]
    assert [r["name"] for r in (await client.get("/data")).json()] == ["alpha"]


async def test_the_same_bytes_are_the_same_request_other_bytes_are_not(
    client: httpx.AsyncClient,
) -> None:
    compact = b'{"name":"alpha"}'
    spaced = b'{"name": "alpha"}'
    headers = keyed("k", **{"Content-Type": "application/json"})
    first = await client.post("/data", content=compact, headers=headers)
    assert (await client.post("/data", content=compact, headers=headers)).headers[REPLAYED]
    assert first.status_code == 200
    assert (await client.post("/data", content=spaced, headers=headers)).status_code == 422


@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "tab\there"])
async def test_a_malformed_key_is_422_and_writes_nothing(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await client.post("/data", json={"name": "alpha"}, headers=keyed(key))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == f"header.{HEADER}"
    assert (await client.get("/data")).json() == []


async def test_the_longest_key_and_any_printable_character_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    for key in ("x" * 255, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"):
        assert (await client.post("/data", json={"name": key[:9]}, headers=keyed(key))).is_success


async def test_a_request_refused_before_writing_keeps_its_key_free(
    client: httpx.AsyncClient,
) -> None:
    invalid = await client.post("/data", json={"name": ""}, headers=keyed("k"))
    assert invalid.status_code == 422
    valid = await client.post("/data", json={"name": "alpha"}, headers=keyed("k"))
    assert valid.status_code == 200 and REPLAYED not in valid.headers


async def test_keys_belong_to_their_caller(
    make_client: ClientFactory, make_key: Callable[..., Awaitable[str]]
) -> None:
    client = await make_client(auth="writes")
    one, two = await make_key("one", "write"), await make_key("two", "write")
    first = await client.post("/data", json={"name": "a"}, headers=keyed("k", **bearer(one)))
    other = await client.post("/data", json={"name": "b"}, headers=keyed("k", **bearer(two)))
    assert (first.status_code, other.status_code) == (200, 200)
    assert REPLAYED not in other.headers
    assert {r["name"] for r in (await client.get("/data")).json()} == {"a", "b"}


async def test_concurrent_requests_with_one_key_write_once_and_all_get_its_response(
    client: httpx.AsyncClient,
) -> None:
    """The second waits for the first one's transaction, then replays it (never 409)."""
    responses = await asyncio.gather(
        *(client.post("/data", json={"name": "alpha"}, headers=keyed("k")) for _ in range(20))
    )
    assert {(r.status_code, r.content) for r in responses} == {
        (responses[0].status_code, responses[0].content)
    }
    assert responses[0].status_code == 200
    assert sum(REPLAYED in r.headers for r in responses) == 19
    assert len((await client.get("/data")).json()) == 1


def claim(key: str, kept: timedelta = timedelta(hours=1), body: bytes = b"a") -> IdempotentRequest:
    return IdempotentRequest("someone", key, body.hex().ljust(64, "0"), kept)


async def test_a_failed_write_stores_no_key_and_an_expired_key_is_new(database_url: str) -> None:
    store = await open_store(database_url, 2)
    calls: list[str] = []

    async def ok(store: Store) -> StoredResponse:
        calls.append("ok")
        return StoredResponse(200, b'{"n": 1}')

    async def fails(store: Store) -> StoredResponse:
        calls.append("fails")
        raise RuntimeError("the database went away mid-write")

    try:
        with pytest.raises(RuntimeError):
            await store.once(claim("k"), fails)
        first = await store.once(claim("k"), ok)  # nothing was kept of the failed attempt
        again = await store.once(claim("k"), ok)
        assert (first.replayed, again.replayed, again.response) == (False, True, first.response)
        with pytest.raises(KeyReused):
            await store.once(claim("k", body=b"b"), ok)
        expired = await store.once(claim("k", kept=timedelta(seconds=-1), body=b"b"), ok)
        assert expired.replayed is False
        assert calls == ["fails", "ok", "ok"]
    finally:
        await store.close()


async def test_only_the_store_handed_to_the_write_is_in_its_transaction(database_url: str) -> None:
    """The write's transaction is passed, never found: the service's own store, called during
    the write (a task it started, say), is not moved into it. It was once a context variable,
    which asyncio copies into every task, so such calls joined the write's transaction: on
    PostgreSQL a rolled-back write took them with it."""
    store = await open_store(database_url, 2, timeouts=Timeouts(acquire=0.2))
    who = Actor("someone", None, None)

    async def fails(transactional: Store) -> StoredResponse:
        assert transactional is not store
        await transactional.create("inside", who)
        # SQLite's one connection is the transaction's until it ends: the service's waits.
        with contextlib.suppress(DatabaseBusy):
            await store.create("outside", who)
        raise RuntimeError("the write failed after both")

    try:
        with pytest.raises(RuntimeError):
            await store.once(claim("k"), fails)
        names = [record.name for record in await store.page(0, 10)]
        assert names == ([] if database_url.startswith("sqlite") else ["outside"])
    finally:
        await store.close()


async def test_expired_keys_are_purged(database_url: str) -> None:
    store = await open_store(database_url, 2)

    async def ok(store: Store) -> StoredResponse:
        return StoredResponse(200, b"{}")

    try:
        for key in ("a", "b", "c"):
            await store.once(claim(key), ok)
        store._purge._next = 0.0  # due now  # type: ignore[attr-defined]
        await store.once(claim("d", kept=timedelta(seconds=-1)), ok)
        # a, b and c were purged: each is a new key again, even with another request.
        for key in ("a", "b", "c"):
            assert (await store.once(claim(key, body=b"other"), ok)).replayed is False
        assert (await store.once(claim("d", body=b"a"), ok)).replayed is True
    finally:
        await store.close()


async def _add_expired_keys(database_url: str, count: int, first: int) -> None:
    """`count` keys created a day and more ago, as writes at any rate leave behind."""
    created = datetime.now(UTC) - timedelta(days=2)
    rows = [("load", f"expired-{first + n}", "f" * 64, created, 200, "{}") for n in range(count)]
    insert = "INSERT INTO idempotency_keys VALUES ($1, $2, $3, $4, $5, $6)"
    if database_url.startswith("sqlite"):
        # closing(): the connection's own `with` commits but leaves it open
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db, db:
            db.executemany(
                sqlite_placeholders(insert),
                [(*row[:3], row[3].isoformat(timespec="microseconds"), *row[4:]) for row in rows],
            )
        return
    connection = await asyncpg.connect(database_url)
    try:
        await connection.executemany(insert, rows)
    finally:
        await connection.close()


async def _ok(store: Store) -> StoredResponse:
    return StoredResponse(200, b"{}")


async def test_the_purge_keeps_up_with_a_write_rate_far_above_a_batch_a_minute(
    database_url: str,
) -> None:
    """Minute after minute, 6,000 keyed writes expire in a worker (100/s: six times the 1,000
    a minute, about 17/s, that a batch per PURGE_INTERVAL_SECONDS could delete). Only a few of
    that minute's writes are made here; each deletes a batch while a full batch came back, so
    the expired keys are gone by the end of each minute instead of piling up."""
    store = await open_store(database_url, 2)
    per_minute = 6 * PURGE_BATCH
    try:
        for minute in range(3):
            await _add_expired_keys(database_url, per_minute, minute * per_minute)
            store._purge._next = 0.0  # type: ignore[attr-defined]  # a minute went by
            for n in range(per_minute // PURGE_BATCH + 2):
                await store.once(claim(f"minute-{minute}-{n}"), _ok)
            assert await _count_keys(database_url, "load") == 0, f"minute {minute}"
    finally:
        await store.close()


async def _count_keys(database_url: str, actor: str) -> int:
    query = "SELECT count(*) FROM idempotency_keys WHERE actor = $1"
    if database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
            return int(db.execute(sqlite_placeholders(query), (actor,)).fetchone()[0])
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval(query, actor))
    finally:
        await connection.close()


class LosesTheFirstAnswer(httpx.AsyncBaseTransport):
    """The first request reaches the service, which commits it; its response is lost on the way
    back (a load balancer's timeout during a failover), as the client sees a ReadTimeout."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.lost = inner, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.lost == 0:
            self.lost += 1
            await response.aclose()
            raise httpx.ReadTimeout("the response was lost", request=request)
        return response


async def test_the_drills_writer_retries_a_lost_answer_into_one_write(
    client: httpx.AsyncClient,
) -> None:
    lossy = httpx.AsyncClient(
        transport=LosesTheFirstAnswer(client._transport), base_url=client.base_url
    )
    written = await write_once(lossy, "POST", "/data", json={"name": "alpha"}, backoff=0)
    assert (written.attempts, written.replayed) == (2, True)
    assert written.errors == ["ReadTimeout: the response was lost"]
    assert written.response is not None and written.response.json()["name"] == "alpha"
    assert [r["name"] for r in (await client.get("/data")).json()] == ["alpha"]
    refused = await write_once(client, "POST", "/data", json={"name": "alpha"}, backoff=0)
    assert (refused.attempts, refused.response.status_code) == (1, 409)  # type: ignore[union-attr]


@pytest.mark.postgres
async def test_a_repeat_waits_for_the_first_then_replays_it_or_gives_up_at_the_lock_timeout(
    postgres_server: str, postgres_template: str
) -> None:
    """The first request's claim is held open here, as a slow write would hold it: a repeat waits
    on the key's row, answers 503 at REGISTRO_DB_LOCK_TIMEOUT_SECONDS, and once the first
    commits, replays its response."""
    url = new_postgres_database(postgres_server, postgres_template)
    settings = load_settings(database_url=url, env="dev", db_lock_timeout_seconds=0.5)
    app = create_app(settings)
    first = await asyncpg.connect(url)
    try:
        transaction = first.transaction()
        await transaction.start()
        await first.execute(
            "INSERT INTO idempotency_keys (actor, key, fingerprint, created_at, status, body)"
            " VALUES ('anonymous', 'k', $1, now(), 200, '{\"replayed\": true}')",
            fingerprint("POST", "/data", b'{"name":"alpha"}'),
        )
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                started = time.monotonic()
                post = {"content": b'{"name":"alpha"}', "headers": keyed("k", **JSON_BODY)}
                waited = await client.post("/data", **post)
                assert waited.status_code == 503
                assert 0.5 <= time.monotonic() - started < 3
                pending = asyncio.create_task(client.post("/data", **post))
                await asyncio.sleep(0.2)
                await transaction.commit()
                replayed = await pending
                assert (replayed.status_code, replayed.json()) == (200, {"replayed": True})
                assert (await client.get("/data")).json() == []
    finally:
        await first.close()
