"""The audit trail: one entry per successful write, in the same transaction, append-only."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from registro.store.urls import sqlalchemy_url
from tests.conftest import ClientFactory, bearer


async def test_every_successful_write_is_audited_with_who_what_and_where(
    make_client: ClientFactory, make_key
) -> None:
    writer = await make_key("importer", "write")
    admin = await make_key("auditor", "admin")
    client = await make_client(auth="writes")
    headers = {**bearer(writer), "X-Request-ID": "req-42"}

    created = (await client.post("/data", json={"name": "a"}, headers=headers)).json()
    await client.post("/data", json={"name": "a"}, headers=headers)  # 409: not audited
    await client.put(f"/data/{created['id']}", json={"name": "b"}, headers=headers)
    await client.delete(f"/data/{created['id']}", headers=headers)
    await client.delete(f"/data/{created['id']}", headers=headers)  # 404: not audited

    response = await client.get("/audit", headers=bearer(admin))
    assert response.status_code == 200
    entries = response.json()
    assert [e["action"] for e in entries] == ["delete", "update", "create"]
    assert {e["actor"] for e in entries} == {"importer"}
    assert {e["request_id"] for e in entries} == {"req-42"}
    assert {e["client"] for e in entries} == {"203.0.113.7"}
    assert {e["record_id"] for e in entries} == {created["id"]}
    delete, update, create = entries
    assert create["before"] is None and create["after"] == {"id": created["id"], "name": "a"}
    assert update["before"]["name"] == "a" and update["after"]["name"] == "b"
    assert delete["before"]["name"] == "b" and delete["after"] is None


async def test_anonymous_writes_are_audited_as_anonymous(
    client: httpx.AsyncClient, make_key
) -> None:
    admin = await make_key("auditor", "admin")
    await client.post("/data", json={"name": "a"})
    entries = (await client.get("/audit", headers=bearer(admin))).json()
    assert [e["actor"] for e in entries] == ["anonymous"]


async def test_audit_needs_an_admin_key_even_with_auth_off(
    client: httpx.AsyncClient, make_key
) -> None:
    writer = await make_key("importer", "read", "write")
    assert (await client.get("/audit")).status_code == 401
    assert (await client.get("/audit", headers=bearer(writer))).status_code == 403


async def test_audit_is_paginated_newest_first(client: httpx.AsyncClient, make_key) -> None:
    admin = await make_key("auditor", "admin")
    for i in range(5):
        await client.post("/data", json={"name": f"n{i}"})
    pages = []
    url: str | None = "/audit?limit=2"
    while url:
        response = await client.get(url, headers=bearer(admin))
        pages.append([e["id"] for e in response.json()])
        url = response.links.get("next", {}).get("url")
    assert [len(page) for page in pages] == [2, 2, 1]
    ids = [i for page in pages for i in page]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5


@pytest.mark.parametrize("statement", ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"])
async def test_the_database_refuses_to_change_audit_rows(
    client: httpx.AsyncClient, database_url: str, statement: str
) -> None:
    await client.post("/data", json={"name": "a"})
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(sa.text(statement))
        async with engine.connect() as connection:
            actors = (await connection.execute(sa.text("SELECT actor FROM audit"))).scalars()
            assert list(actors) == ["anonymous"]
    finally:
        await engine.dispose()
