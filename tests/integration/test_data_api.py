"""The /data contract of ARCHITECTURE.md, seed-compatible, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from registro.store import ApiKey, Store, keys, postgres, sqlite
from registro.store.postgres import PostgresStore
from registro.store.sqlite import SqliteStore
from tests.conftest import ClientFactory, bearer


async def test_create_returns_the_seed_message_and_the_record(client: httpx.AsyncClient) -> None:
    response = await client.post("/data", json={"name": "alpha"})
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Data inserted successfully"
    assert body["name"] == "alpha"
    assert isinstance(body["id"], int)


async def test_duplicate_name_is_409_with_the_seed_message(client: httpx.AsyncClient) -> None:
    await client.post("/data", json={"name": "alpha"})
    response = await client.post("/data", json={"name": "alpha"})
    assert response.status_code == 409
    assert response.json() == {"message": "Data already exists"}


async def test_names_are_trimmed_before_uniqueness_is_checked(client: httpx.AsyncClient) -> None:
    first = await client.post("/data", json={"name": "  beta "})
    assert first.json()["name"] == "beta"
    again = await client.post("/data", json={"name": "beta"})
    assert again.status_code == 409


async def test_names_that_look_the_same_are_one_name(client: httpx.AsyncClient) -> None:
    """NFC and NFD spellings of "café" are one record, stored in NFC."""
    first = await client.post("/data", json={"name": "caf\u00e9"})
    assert first.status_code == 200
    again = await client.post("/data", json={"name": "cafe\u0301"})
    assert again.status_code == 409
    other = (await client.post("/data", json={"name": "other"})).json()["id"]
    renamed = await client.put(f"/data/{other}", json={"name": "cafe\u0301"})
    assert renamed.status_code == 409
    decomposed = await client.post("/data", json={"name": " A\u030angstr\u00f6m "})
    assert decomposed.json()["name"] == "\u00c5ngstr\u00f6m"
    assert (await client.get(f"/data/{decomposed.json()['id']}")).json()["name"] == (
        "\u00c5ngstr\u00f6m"
    )


async def test_get_update_delete_round_trip(client: httpx.AsyncClient) -> None:
    created = (await client.post("/data", json={"name": "gamma"})).json()
    record_id = created["id"]

    got = await client.get(f"/data/{record_id}")
    assert got.status_code == 200
    assert got.json() == {"id": record_id, "name": "gamma"}

    renamed = await client.put(f"/data/{record_id}", json={"name": "delta"})
    assert renamed.status_code == 200
    assert renamed.json() == {"id": record_id, "name": "delta"}

    deleted = await client.delete(f"/data/{record_id}")
    assert deleted.status_code == 200
    assert deleted.json() == {"message": "Data deleted successfully"}

    gone = await client.get(f"/data/{record_id}")
    assert gone.status_code == 404
    assert gone.json() == {"message": "Data not found"}
    again = await client.delete(f"/data/{record_id}")
    assert again.status_code == 404
    assert again.json() == {"message": "Data not found"}


async def test_rename_to_a_taken_name_is_409_and_changes_nothing(client: httpx.AsyncClient) -> None:
    a = (await client.post("/data", json={"name": "a"})).json()
    await client.post("/data", json={"name": "b"})
    response = await client.put(f"/data/{a['id']}", json={"name": "b"})
    assert response.status_code == 409
    assert (await client.get(f"/data/{a['id']}")).json()["name"] == "a"


async def test_rename_of_a_missing_record_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put("/data/424242", json={"name": "x"})
    assert response.status_code == 404
    assert response.json() == {"message": "Data not found"}


async def test_deleted_ids_are_never_reused(client: httpx.AsyncClient) -> None:
    first = (await client.post("/data", json={"name": "one"})).json()["id"]
    await client.delete(f"/data/{first}")
    second = (await client.post("/data", json={"name": "two"})).json()["id"]
    assert second > first


async def test_fifty_concurrent_posts_of_one_name_give_one_row(client: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(
        *(client.post("/data", json={"name": "contended"}) for _ in range(50))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1
    assert statuses.count(409) == 49
    rows = (await client.get("/data")).json()
    assert [r["name"] for r in rows] == ["contended"]


async def test_list_is_ordered_by_id_and_paginated_with_a_next_link(
    client: httpx.AsyncClient,
) -> None:
    for i in range(7):
        await client.post("/data", json={"name": f"n{i}"})
    seen: list[int] = []
    url: str | None = "/data?limit=3"
    pages = 0
    while url:
        response = await client.get(url)
        assert response.status_code == 200
        seen += [r["id"] for r in response.json()]
        url = response.links.get("next", {}).get("url")
        pages += 1
    assert pages == 3
    assert len(seen) == 7
    assert seen == sorted(seen)


async def test_list_defaults_to_100_and_a_full_last_page_has_no_next_link(
    client: httpx.AsyncClient,
) -> None:
    for i in range(100):
        await client.post("/data", json={"name": f"r{i}"})
    response = await client.get("/data")
    assert len(response.json()) == 100
    assert "link" not in response.headers


async def test_list_rejects_bad_paging_parameters(client: httpx.AsyncClient) -> None:
    for query in (
        "limit=0",
        "limit=1001",
        "limit=x",
        "after=-1",
        "after=1e3",
        "after=99999999999999999999",
    ):
        response = await client.get(f"/data?{query}")
        assert response.status_code == 422, query
        assert "message" in response.json()


async def test_auth_writes_mode_protects_writes_only(make_client: ClientFactory, make_key) -> None:
    writer = await make_key("ci-writer", "write")
    reader = await make_key("dashboard", "read")
    client = await make_client(auth="writes")

    anonymous = await client.post("/data", json={"name": "x"})
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["message"] == "Missing or invalid API key"

    bad = await client.post("/data", json={"name": "x"}, headers=bearer("rg_nope_nope"))
    assert bad.status_code == 401

    forbidden = await client.post("/data", json={"name": "x"}, headers=bearer(reader))
    assert forbidden.status_code == 403

    assert (
        await client.post("/data", json={"name": "x"}, headers=bearer(writer))
    ).status_code == 200
    assert (await client.get("/data")).status_code == 200
    assert (await client.get("/data")).json() == [{"id": 1, "name": "x"}]


async def test_auth_all_mode_protects_reads_too(make_client: ClientFactory, make_key) -> None:
    reader = await make_key("dashboard", "read")
    client = await make_client(auth="all")
    assert (await client.get("/data")).status_code == 401
    assert (await client.get("/data", headers=bearer(reader))).status_code == 200
    assert (
        await client.post("/data", json={"name": "x"}, headers=bearer(reader))
    ).status_code == 403


async def test_a_revoked_key_stops_working(
    make_client: ClientFactory, make_key, database_url: str
) -> None:
    from registro.store import open_store

    writer = await make_key("temp", "write")
    client = await make_client(auth="writes", auth_cache_seconds=0)
    assert (
        await client.post("/data", json={"name": "a"}, headers=bearer(writer))
    ).status_code == 200
    store = await open_store(database_url, 1)
    assert await store.revoke_key("temp")
    await store.close()
    assert (
        await client.post("/data", json={"name": "b"}, headers=bearer(writer))
    ).status_code == 401


async def test_a_request_looks_its_key_up_once_and_a_cached_key_not_at_all(
    make_client: ClientFactory, make_key, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The longest path (a keyed, idempotent write under REGISTRO_AUTH=all) asks the store for
    the caller's key once; within REGISTRO_AUTH_CACHE_SECONDS, not at all."""
    looked_up: list[str] = []
    for store_class in (SqliteStore, PostgresStore):
        find_key = store_class.find_key

        async def counted(self: Store, key_id: str, find_key: Any = find_key) -> ApiKey | None:
            looked_up.append(key_id)
            return await find_key(self, key_id)  # type: ignore[no-any-return]

        monkeypatch.setattr(store_class, "find_key", counted)
    writer = bearer(await make_key("ci", "read", "write"))
    uncached = await make_client(auth="all", auth_cache_seconds=0)
    for _ in range(2):
        write = await uncached.post(
            "/data", json={"name": "a"}, headers={**writer, "Idempotency-Key": "k1"}
        )
        assert write.status_code == 200, write.text
        assert len(looked_up) == 1, looked_up
        looked_up.clear()
    assert (await uncached.get("/data", headers=writer)).status_code == 200
    assert len(looked_up) == 1
    looked_up.clear()
    cached = await make_client(auth="all")
    for _ in range(3):
        assert (await cached.get("/data", headers=writer)).status_code == 200
    assert len(looked_up) == 1


def test_the_api_key_statements_are_written_once_for_both_databases() -> None:
    """registro.store.keys holds them; a backend that wrote its own again would drift."""
    for module in (postgres, sqlite):
        assert "api_keys" not in Path(module.__file__ or "").read_text(), module.__name__
    assert keys.FIND in {postgres.keys.FIND} and keys.FIND.replace("$", "?") == sqlite.FIND_KEY
